/**
 * A Kafka broker in a container (testcontainers, KRaft mode), for machines with
 * a container runtime. Loaded lazily so hosts without one never pay for it.
 */
import { ErrorCode, MmadError, messageOf } from '../base/errors.js';

export interface ContainerBroker {
  bootstrap: string;
  stop: () => Promise<void>;
}

export async function startContainerBroker(image: string, maxMessageBytes: number): Promise<ContainerBroker> {
  try {
    const { KafkaContainer } = await import('@testcontainers/kafka');
    const container = await new KafkaContainer(image)
      .withKraft()
      .withEnvironment({
        KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR: '1',
        KAFKA_TRANSACTION_STATE_LOG_MIN_ISR: '1',
        KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR: '1',
        KAFKA_AUTO_CREATE_TOPICS_ENABLE: 'false',
        KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS: '0',
        KAFKA_MESSAGE_MAX_BYTES: String(maxMessageBytes),
        KAFKA_REPLICA_FETCH_MAX_BYTES: String(maxMessageBytes),
      })
      .start();
    return {
      bootstrap: `${container.getHost()}:${container.getMappedPort(9093)}`,
      stop: async () => {
        await container.stop();
      },
    };
  } catch (err) {
    throw new MmadError(ErrorCode.BROKER_START_FAILED, `could not start a Kafka container (${image}): ${messageOf(err)}`, { cause: err });
  }
}

/** Cheap check for a reachable container runtime, without asking testcontainers to probe every strategy. */
export async function containerRuntimeReachable(): Promise<boolean> {
  const { existsSync } = await import('node:fs');
  const { homedir } = await import('node:os');
  if (process.env.DOCKER_HOST !== undefined && process.env.DOCKER_HOST !== '') return true;
  const sockets = ['/var/run/docker.sock', `${homedir()}/.docker/run/docker.sock`, `/run/user/${process.getuid?.() ?? 0}/podman/podman.sock`];
  if (!sockets.some((s) => existsSync(s))) return false;
  try {
    const { getContainerRuntimeClient } = await import('testcontainers');
    await getContainerRuntimeClient();
    return true;
  } catch {
    return false;
  }
}
