// The official `openai` npm client against the OpenStation gateway (run by openai_client.sh).
// Environment: OS_GATEWAY_URL (http://host:port/v1), OS_KEY, OS_LIMITED_KEY (a key whose
// allow-list excludes OS_MODEL), OS_MODEL. Exits non-zero with a message on the first failure.
import OpenAI from 'openai';

const baseURL = process.env.OS_GATEWAY_URL;
const model = process.env.OS_MODEL;
const client = new OpenAI({ baseURL, apiKey: process.env.OS_KEY, maxRetries: 0, timeout: 30000 });

function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
}

async function expectError(what, cls, status, fn) {
  try {
    await fn();
  } catch (e) {
    check(e instanceof cls, `${what}: expected ${cls.name}, got ${e?.constructor?.name}: ${e?.message}`);
    check(e.status === status, `${what}: expected status ${status}, got ${e.status}`);
    check(typeof e.error?.message === 'string' && e.error.message.length > 0,
          `${what}: the error body has no message: ${JSON.stringify(e.error)}`);
    console.log(`ok - ${what}: ${e.status} ${e.constructor.name} (${e.code ?? e.type})`);
    return;
  }
  throw new Error(`${what}: the call succeeded`);
}

// models.list
const models = [];
for await (const m of client.models.list()) models.push(m.id);
check(models.includes(model), `models.list lists ${model}: ${JSON.stringify(models)}`);
console.log(`ok - models.list: ${models.join(', ')}`);

// chat, not streamed
const chat = await client.chat.completions.create({
  model, messages: [{ role: 'user', content: 'Say hello' }], max_tokens: 8,
});
check(chat.choices.length === 1, 'one choice');
check(typeof chat.choices[0].message.content === 'string' && chat.choices[0].message.content.length > 0,
      `chat content: ${JSON.stringify(chat)}`);
check(chat.usage && chat.usage.total_tokens > 0, `chat usage: ${JSON.stringify(chat.usage)}`);
console.log(`ok - chat: "${chat.choices[0].message.content}" (${chat.usage.total_tokens} tokens)`);

// chat, streamed (with the usage chunk asked for, so it must arrive)
const stream = await client.chat.completions.create({
  model, messages: [{ role: 'user', content: 'Count' }], max_tokens: 6, stream: true,
  stream_options: { include_usage: true },
});
let text = '';
let chunks = 0;
let usage = null;
for await (const chunk of stream) {
  chunks += 1;
  if (chunk.usage) usage = chunk.usage;
  for (const c of chunk.choices) text += c.delta?.content ?? '';
}
check(chunks >= 2 && text.length > 0, `streamed ${chunks} chunks: "${text}"`);
check(usage && usage.completion_tokens > 0, `stream usage: ${JSON.stringify(usage)}`);
console.log(`ok - chat stream: ${chunks} chunks, "${text}", usage ${JSON.stringify(usage)}`);

// a stream without include_usage: no usage chunk reaches the client
let sawUsage = false;
const plain = await client.chat.completions.create({
  model, messages: [{ role: 'user', content: 'Count' }], max_tokens: 4, stream: true,
});
for await (const chunk of plain) if (chunk.usage) sawUsage = true;
check(!sawUsage, 'the usage chunk the client did not ask for is stripped');
console.log('ok - chat stream without include_usage: no usage chunk');

// completions
const completion = await client.completions.create({ model, prompt: 'Once upon a time', max_tokens: 5 });
check(typeof completion.choices[0].text === 'string' && completion.choices[0].text.length > 0,
      `completion text: ${JSON.stringify(completion)}`);
console.log(`ok - completions: "${completion.choices[0].text}"`);

// embeddings: the SDK asks for base64 by default and decodes it; "float" as JSON numbers
const emb = await client.embeddings.create({ model, input: ['hello', 'world'] });
check(emb.data.length === 2, `two embeddings: ${emb.data.length}`);
const vec = emb.data[0].embedding;
check(Array.isArray(vec) && vec.length > 0, 'an embedding vector');
const norm = Math.sqrt(vec.reduce((a, x) => a + x * x, 0));
check(Math.abs(norm - 1) < 1e-3, `the decoded vector is unit length: ${norm}`);
const floats = await client.embeddings.create({ model, input: 'hello', encoding_format: 'float' });
check(floats.data[0].embedding.length === vec.length, 'float and base64 vectors have one length');
check(floats.data[0].embedding.every((x, i) => Math.abs(x - vec[i]) < 1e-6), 'float and base64 agree');
check(emb.usage && emb.usage.prompt_tokens > 0, `embedding usage: ${JSON.stringify(emb.usage)}`);
console.log(`ok - embeddings: 2 x ${vec.length} (base64 and float agree)`);

// errors
const badKey = new OpenAI({ baseURL, apiKey: 'sk-os-aaaaaaaa-' + 'b'.repeat(43), maxRetries: 0 });
await expectError('bad key', OpenAI.AuthenticationError, 401,
                  () => badKey.chat.completions.create({ model, messages: [{ role: 'user', content: 'x' }] }));
await expectError('unknown model', OpenAI.NotFoundError, 404,
                  () => client.chat.completions.create({ model: 'no-such-model', messages: [{ role: 'user', content: 'x' }] }));
const limited = new OpenAI({ baseURL, apiKey: process.env.OS_LIMITED_KEY, maxRetries: 0 });
await expectError('forbidden model', OpenAI.PermissionDeniedError, 403,
                  () => limited.chat.completions.create({ model, messages: [{ role: 'user', content: 'x' }] }));
await expectError('malformed request (no model)', OpenAI.BadRequestError, 400,
                  () => client.chat.completions.create({ messages: [{ role: 'user', content: 'x' }] }));
await expectError('malformed request (stream not a boolean)', OpenAI.BadRequestError, 400,
                  () => client.chat.completions.create({ model, messages: [], stream: 'yes' }));
console.log('PASS: the openai npm client against the gateway');
