// The imapflow + mailparser peer of mailgate's catch-up scenario: fetches
// every message of each mailbox's INBOX (one session per mailbox, all at
// once, as the gateway runs them) and parses each with mailparser's
// simpleParser, as a Node gateway built on them would; nothing is stored.
//
// Prints one JSON line when done: {"messages": N, "bytes": B, "seconds": S}
// timed from the first connect to the last parsed message.
//
// Environment: HOST, PORT, USERS (comma-separated login names), PASSWORD.
import { ImapFlow } from 'imapflow';
import { simpleParser } from 'mailparser';

const env = process.env;
const users = env.USERS.split(',');

async function catchUp(user) {
  const client = new ImapFlow({
    host: env.HOST,
    port: Number(env.PORT),
    secure: false,
    auth: { user, pass: env.PASSWORD },
    logger: false,
  });
  await client.connect();
  const lock = await client.getMailboxLock('INBOX');
  let messages = 0;
  let bytes = 0;
  try {
    for await (const msg of client.fetch('1:*', { uid: true, source: true }, { uid: true })) {
      const parsed = await simpleParser(msg.source);
      if (parsed.subject === undefined) throw new Error(`${user}: UID ${msg.uid} has no subject`);
      messages += 1;
      bytes += msg.source.length;
    }
  } finally {
    lock.release();
  }
  await client.logout();
  return { messages, bytes };
}

const started = process.hrtime.bigint();
const results = await Promise.all(users.map(catchUp));
const seconds = Number(process.hrtime.bigint() - started) / 1e9;
const sum = (k) => results.reduce((a, r) => a + r[k], 0);
console.log(JSON.stringify({ messages: sum('messages'), bytes: sum('bytes'), seconds }));
