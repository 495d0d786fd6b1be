// End-to-end test: the official openai npm SDK talks HTTPS to a gateway with
// API keys, as a client of a hosted API would.
//
// CTest makes a self-signed certificate for 127.0.0.1 first (the fixture
// e2e_tls_certificate), passes its files in MODELGATE_E2E_TLS_CERT and
// MODELGATE_E2E_TLS_KEY, and sets NODE_EXTRA_CA_CERTS to the certificate, so
// that the SDK's own fetch trusts it. MODELGATE_BIN and STUB_BIN name the
// gateway and stub binaries.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import {
  captureOutput,
  importOpenAI,
  pickBackendPortBase,
  pickFreePort,
  quoteCommandWord,
  quoteYaml,
  waitForExit,
  waitForHealthy,
} from './harness.mjs';

const kTestDir = path.dirname(fileURLToPath(import.meta.url));
const OpenAI = await importOpenAI(kTestDir);

const kAllModelsKey = 'sk-e2e-all-models';
const kEmbedOnlyKey = 'sk-e2e-embed-only';
const kReadyTimeoutMs = 10_000;
const kExitTimeoutMs = 10_000;
const kRequestTimeoutMs = 30_000;

function gatewayConfig({ gatewayPort, adminPort, logDir, backendPortBase, stubBin, cert, key }) {
  const runCommand = `${quoteCommandWord(stubBin)} --port {{port}} --model {{model_name}} --tokens 4`;
  return `gateway:
  listen: 127.0.0.1:${gatewayPort}
  admin_listen: 127.0.0.1:${adminPort}
  log_dir: ${quoteYaml(logDir)}
  tls:
    cert_file: ${quoteYaml(cert)}
    key_file: ${quoteYaml(key)}
auth:
  api_keys:
    - name: everything
      key: ${kAllModelsKey}
    - name: embed-only
      key: ${kEmbedOnlyKey}
      deployments: [embed]
workers:
  - name: local
    ports: ${backendPortBase}-${backendPortBase + 50}
backends:
  - backend_name: stub
    default_run_command: ${quoteYaml(runCommand)}
deployments:
  - name: chat
    backend: stub
  - name: embed
    backend: stub
`;
}

let workDir;
let gateway;
let gatewayStderr;
let baseURL;
let anyTestFailed = false;

function client(apiKey) {
  return new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: kRequestTimeoutMs });
}

function gatewayTest(name, fn) {
  test(name, { timeout: kRequestTimeoutMs * 2 }, async (t) => {
    try {
      await fn(t);
    } catch (error) {
      anyTestFailed = true;
      throw error;
    }
  });
}

before(async () => {
  const { MODELGATE_BIN: gatewayBin, STUB_BIN: stubBin } = process.env;
  const { MODELGATE_E2E_TLS_CERT: cert, MODELGATE_E2E_TLS_KEY: key } = process.env;
  for (const [name, file] of Object.entries({ gatewayBin, stubBin, cert, key })) {
    assert.ok(file && existsSync(file), `${name} (${file}) does not exist; run this test with ctest`);
  }
  assert.equal(process.env.NODE_EXTRA_CA_CERTS, cert, 'NODE_EXTRA_CA_CERTS must name the certificate');

  workDir = await mkdtemp(path.join(os.tmpdir(), 'modelgate-e2e-tls-'));
  const gatewayPort = await pickFreePort();
  const adminPort = await pickFreePort();
  const configPath = path.join(workDir, 'modelgate.yaml');
  await writeFile(
    configPath,
    gatewayConfig({
      gatewayPort,
      adminPort,
      logDir: path.join(workDir, 'logs'),
      backendPortBase: pickBackendPortBase(),
      stubBin,
      cert,
      key,
    }),
  );

  gateway = spawn(gatewayBin, ['--config', configPath], { stdio: ['ignore', 'ignore', 'pipe'] });
  gatewayStderr = captureOutput(gateway.stderr);
  await waitForHealthy(`http://127.0.0.1:${adminPort}/health`, gateway, gatewayStderr, kReadyTimeoutMs);
  baseURL = `https://127.0.0.1:${gatewayPort}/v1`;
});

after(async () => {
  let exit = null;
  if (gateway) {
    gateway.kill('SIGTERM');
    exit = await waitForExit(gateway, kExitTimeoutMs);
    if (exit === null) {
      gateway.kill('SIGKILL');
      await waitForExit(gateway, kExitTimeoutMs);
    }
  }
  if (anyTestFailed) {
    console.error(`The gateway's stderr:\n${gatewayStderr?.text}`);
    console.error(`Config and logs are kept in ${workDir}`);
  } else if (workDir) {
    await rm(workDir, { recursive: true, force: true });
  }
  assert.notEqual(exit, null, `The gateway did not exit within ${kExitTimeoutMs} ms of SIGTERM`);
});

gatewayTest('chat completion over HTTPS with an API key', async () => {
  const completion = await client(kAllModelsKey).chat.completions.create({
    model: 'chat',
    messages: [{ role: 'user', content: 'Say hello.' }],
  });
  assert.equal(completion.choices[0].message.content, 'tok0 tok1 tok2 tok3');
});

gatewayTest('streamed chat completion over HTTPS', async () => {
  const stream = await client(kAllModelsKey).chat.completions.create({
    model: 'chat',
    messages: [{ role: 'user', content: 'Say hello.' }],
    stream: true,
  });
  let content = '';
  for await (const chunk of stream) {
    content += chunk.choices[0]?.delta?.content ?? '';
  }
  assert.equal(content, 'tok0 tok1 tok2 tok3');
});

gatewayTest('wrong API key raises AuthenticationError', async () => {
  await assert.rejects(
    client('sk-not-configured').chat.completions.create({
      model: 'chat',
      messages: [{ role: 'user', content: 'Say hello.' }],
    }),
    (error) => {
      assert.ok(
        error instanceof OpenAI.AuthenticationError,
        `expected OpenAI.AuthenticationError, got ${error?.constructor?.name}: ${error?.message}`,
      );
      assert.equal(error.status, 401);
      assert.equal(error.code, 'invalid_api_key');
      return true;
    },
  );
});

gatewayTest('key limited to other models raises PermissionDeniedError', async () => {
  await assert.rejects(
    client(kEmbedOnlyKey).chat.completions.create({
      model: 'chat',
      messages: [{ role: 'user', content: 'Say hello.' }],
    }),
    (error) => {
      assert.ok(
        error instanceof OpenAI.PermissionDeniedError,
        `expected OpenAI.PermissionDeniedError, got ${error?.constructor?.name}: ${error?.message}`,
      );
      assert.equal(error.status, 403);
      return true;
    },
  );

  const embedding = await client(kEmbedOnlyKey).embeddings.create({ model: 'embed', input: 'hi' });
  assert.equal(embedding.data.length, 1);

  const models = await client(kEmbedOnlyKey).models.list();
  assert.deepEqual(models.data.map((model) => model.id), ['embed']);
});
