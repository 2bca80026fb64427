// The imapflow peer of mailgate's idle scenarios: holds one IMAP session per
// farm mailbox in IDLE, as EmailEngine does, so the load-test runner can
// measure this process exactly as it measures the gateway.
//
// Protocol with the runner (stdin/stdout): prints "ready" once loaded (the
// runner reads the base RSS), connects every mailbox after a "go" line, at
// most LOGINS at a time, and prints "connected N" when all sessions have
// opened INBOX and entered IDLE. Exits on stdin EOF.
//
// Environment: HOST, PORT, MAILBOXES, PASSWORD, TLS ("1" for implicit TLS),
// CA_FILE (PEM to trust with TLS), LOGINS (default 64).
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { ImapFlow } from 'imapflow';

const env = process.env;
const mailboxes = Number(env.MAILBOXES);
const logins = Number(env.LOGINS || 64);
const tls = env.TLS === '1';
const ca = tls && env.CA_FILE ? readFileSync(env.CA_FILE) : undefined;
const clients = [];

async function open(n) {
  const client = new ImapFlow({
    host: env.HOST,
    port: Number(env.PORT),
    secure: tls,
    tls: ca ? { ca, servername: 'localhost' } : undefined,
    auth: { user: `user${n}`, pass: env.PASSWORD },
    logger: false,
  });
  client.on('error', (e) => console.error(`user${n}: ${e.message}`));
  await client.connect();
  await client.mailboxOpen('INBOX');
  // Enter IDLE now (imapflow would on its own after a quiet spell); the
  // promise settles when IDLE ends.
  client.idle().catch(() => {});
  clients.push(client);
}

async function connectAll() {
  let next = 1;
  const worker = async () => {
    while (next <= mailboxes) {
      const n = next++;
      await open(n);
    }
  };
  await Promise.all(Array.from({ length: Math.min(logins, mailboxes) }, worker));
  console.log(`connected ${clients.length}`);
}

console.log('ready');
const lines = createInterface({ input: process.stdin });
lines.on('line', (line) => {
  if (line.trim() === 'go') {
    connectAll().catch((e) => {
      console.error(`connect failed: ${e.message}`);
      process.exit(1);
    });
  }
});
lines.on('close', () => process.exit(0));
