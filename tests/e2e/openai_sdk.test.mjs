// End-to-end test: the official openai npm SDK talks to a running gateway,
// which starts the stub backend (bench/) on the first request for its model.
//
// Run from this folder with `node --test openai_sdk.test.mjs` after `npm ci`.
// MODELGATE_BIN and STUB_BIN name the gateway and stub binaries, which CTest
// sets for the test e2e_openai_sdk.

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
  readInstanceLogs,
  waitForExit,
  waitForHealthy,
} from './harness.mjs';

const kTestDir = path.dirname(fileURLToPath(import.meta.url));
const OpenAI = await importOpenAI(kTestDir);

const kDeploymentModel = 'demo';
const kStubTokens = 8;  // --tokens in the run command below
const kExpectedContent = Array.from({ length: kStubTokens }, (_, i) => `tok${i}`).join(' ');

const kReadyTimeoutMs = 10_000;
const kExitTimeoutMs = 10_000;
const kRequestTimeoutMs = 30_000;

function gatewayConfig({ gatewayPort, logDir, backendPortBase, stubBin }) {
  const runCommand =
    `${quoteCommandWord(stubBin)} --port {{port}} --model {{model_name}} --tokens ${kStubTokens}`;
  return `gateway:
  listen: 127.0.0.1:${gatewayPort}
  log_dir: ${quoteYaml(logDir)}
workers:
  - name: local
    runtime: process
    ports: ${backendPortBase}-${backendPortBase + 50}
backends:
  - backend_name: stub
    health_check_path: /v1/models
    default_run_command: ${quoteYaml(runCommand)}
deployments:
  - name: ${kDeploymentModel}
    backend: stub
    idle_timeout: 5m
`;
}

let workDir;
let gateway;
let gatewayStdout;
let gatewayStderr;
let client;
let anyTestFailed = false;

// Registers a test that records its failure, so that after() can print the
// gateway's output.
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
  const gatewayBin = process.env.MODELGATE_BIN;
  const stubBin = process.env.STUB_BIN;
  assert.ok(gatewayBin, 'MODELGATE_BIN must name the gateway binary (ctest sets it)');
  assert.ok(stubBin, 'STUB_BIN must name the stub backend binary (ctest sets it)');
  assert.ok(existsSync(gatewayBin), `MODELGATE_BIN ${gatewayBin} does not exist`);
  assert.ok(existsSync(stubBin), `STUB_BIN ${stubBin} does not exist`);

  // Write the config.
  workDir = await mkdtemp(path.join(os.tmpdir(), 'modelgate-e2e-'));
  const gatewayPort = await pickFreePort();
  const configPath = path.join(workDir, 'modelgate.yaml');
  await writeFile(
    configPath,
    gatewayConfig({
      gatewayPort,
      logDir: path.join(workDir, 'logs'),
      backendPortBase: pickBackendPortBase(),
      stubBin,
    }),
  );

  // Start the gateway and wait until it serves.
  gateway = spawn(gatewayBin, ['--config', configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  gatewayStdout = captureOutput(gateway.stdout);
  gatewayStderr = captureOutput(gateway.stderr);
  try {
    await waitForHealthy(`http://127.0.0.1:${gatewayPort}/health`, gateway, gatewayStderr, kReadyTimeoutMs);
  } catch (error) {
    anyTestFailed = true;
    throw error;
  }

  // No retries, so that a failed request fails the test instead of being
  // hidden by a second attempt.
  client = new OpenAI({
    baseURL: `http://127.0.0.1:${gatewayPort}/v1`,
    apiKey: 'unused',
    maxRetries: 0,
    timeout: kRequestTimeoutMs,
  });
});

after(async () => {
  // Stop the gateway that before() started, by its PID.
  let exit = null;
  if (gateway) {
    gateway.kill('SIGTERM');
    exit = await waitForExit(gateway, kExitTimeoutMs);
    if (exit === null) {
      gateway.kill('SIGKILL');
      await waitForExit(gateway, kExitTimeoutMs);
    }
  }

  const exitedCleanly = exit !== null && exit.code === 0;
  if (anyTestFailed || (gateway && !exitedCleanly)) {
    console.error(`The gateway's stderr:\n${gatewayStderr?.text}`);
    console.error(`The gateway's stdout:\n${gatewayStdout?.text}`);
    if (workDir) {
      console.error(`Instance logs:\n${await readInstanceLogs(path.join(workDir, 'logs'))}`);
      console.error(`Config and logs are kept in ${workDir}`);
    }
  } else if (workDir) {
    await rm(workDir, { recursive: true, force: true });
  }

  if (gateway) {
    assert.notEqual(exit, null, `The gateway did not exit within ${kExitTimeoutMs} ms of SIGTERM`);
    assert.equal(exit.code, 0, `The gateway exited with code ${exit.code} (signal ${exit.signal}) after SIGTERM`);
  }
});

gatewayTest('chat completion starts the backend on first request', async () => {
  const completion = await client.chat.completions.create({
    model: kDeploymentModel,
    messages: [{ role: 'user', content: 'Say hello.' }],
  });

  assert.equal(completion.object, 'chat.completion');
  assert.equal(completion.model, kDeploymentModel);
  assert.equal(completion.choices.length, 1);
  assert.equal(completion.choices[0].message.role, 'assistant');
  assert.equal(completion.choices[0].message.content, kExpectedContent);
  assert.equal(completion.choices[0].finish_reason, 'stop');
});

gatewayTest('streamed chat completion matches plain one', async () => {
  const request = {
    model: kDeploymentModel,
    messages: [{ role: 'user', content: 'Say hello.' }],
  };
  const plain = await client.chat.completions.create(request);

  const stream = await client.chat.completions.create({ ...request, stream: true });
  const chunks = [];
  for await (const chunk of stream) {
    chunks.push(chunk);
  }

  assert.ok(chunks.length >= 2, `expected at least 2 chunks, got ${chunks.length}`);
  for (const chunk of chunks) {
    assert.equal(chunk.object, 'chat.completion.chunk');
    assert.equal(chunk.model, kDeploymentModel);
  }
  const content = chunks.map((chunk) => chunk.choices[0]?.delta?.content ?? '').join('');
  assert.equal(content, plain.choices[0].message.content);
  assert.equal(content, kExpectedContent);
  assert.equal(chunks.at(-1).choices[0].finish_reason, 'stop');
});

gatewayTest('unknown model is rejected with 404', async () => {
  await assert.rejects(
    client.chat.completions.create({
      model: 'no-such-model',
      messages: [{ role: 'user', content: 'Say hello.' }],
    }),
    (error) => {
      assert.ok(
        error instanceof OpenAI.NotFoundError,
        `expected OpenAI.NotFoundError, got ${error?.constructor?.name}: ${error?.message}`,
      );
      assert.equal(error.status, 404);
      assert.equal(error.code, 'model_not_found');
      return true;
    },
  );
});
