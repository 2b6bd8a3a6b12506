#!/usr/bin/env bash
# Installs what the project needs beyond npm on a Debian machine (run as root,
# or with sudo available): a JDK and Maven for the local Kafka broker, and the
# independent clients the interoperability tests compare against. Each package
# is installed only when missing, so a second run costs nothing.
set -euo pipefail

need=()
command -v java >/dev/null 2>&1 || need+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || need+=(maven)
command -v kcat >/dev/null 2>&1 || need+=(kcat)
/usr/bin/python3 -c 'import avro' >/dev/null 2>&1 || need+=(python3-avro)
/usr/bin/python3 -c 'import confluent_kafka' >/dev/null 2>&1 || need+=(python3-confluent-kafka)
# tifffile (with numpy) is the independent reader the dataset tests check our xyz TIFFs against
/usr/bin/python3 -c 'import tifffile, numpy' >/dev/null 2>&1 || need+=(python3-tifffile)
# headless Chromium: test/view/ drives the web view's pages in it (puppeteer-core)
command -v chromium >/dev/null 2>&1 || need+=(chromium)

if [ ${#need[@]} -gt 0 ]; then
  echo "bootstrap: installing ${need[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
