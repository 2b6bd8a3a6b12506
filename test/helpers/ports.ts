import { createServer } from 'node:net';

/** A port nothing listens on right now: for a child process's operations server, or a broker that is not there yet. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}
