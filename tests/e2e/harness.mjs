// Helpers shared by the end-to-end tests: free ports, quoting for the
// gateway's config, a child process's output, and polling with a deadline.

import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';

const kPollIntervalMs = 20;
const kMaxCapturedBytes = 64 * 1024;

// Imports the openai package installed in testDir. A missing `npm ci`
// fails with the fix instead of ERR_MODULE_NOT_FOUND.
export async function importOpenAI(testDir) {
  if (!existsSync(path.join(testDir, 'node_modules', 'openai'))) {
    throw new Error(
      `The openai package is not installed. Run \`npm ci\` in ${testDir} and run the test again.`,
    );
  }
  const { default: OpenAI } = await import('openai');
  return OpenAI;
}

// Returns a TCP port on 127.0.0.1 that was free a moment ago.
export async function pickFreePort() {
  const server = net.createServer();
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

// Returns a random base of a 51-port range for backends, below the kernel's
// default ephemeral range (32768-60999) so that no outgoing connection takes
// a backend's port.
export function pickBackendPortBase() {
  return 21000 + Math.floor(Math.random() * 8001);
}

// Quotes a path for the gateway's run command, which is split with POSIX
// shell quoting.
export function quoteCommandWord(word) {
  return `"${word.replace(/[\\"$`]/g, '\\$&')}"`;
}

// Quotes text as a single-quoted YAML scalar.
export function quoteYaml(text) {
  return `'${text.replace(/'/g, "''")}'`;
}

// Keeps the last kMaxCapturedBytes of a child's output stream.
export function captureOutput(stream) {
  const captured = { text: '' };
  stream.setEncoding('utf8');
  stream.on('data', (chunk) => {
    captured.text = (captured.text + chunk).slice(-kMaxCapturedBytes);
  });
  return captured;
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// Resolves with { code, signal } when the child exits, or with null after
// timeoutMs.
export function waitForExit(child, timeoutMs) {
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  }
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(null), timeoutMs);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal });
    });
  });
}

// Polls GET url every kPollIntervalMs until it returns 200. Throws when the
// child exits first or after timeoutMs.
export async function waitForHealthy(url, child, stderr, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  let lastProblem = 'no attempt made';
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(
        `The gateway exited with code ${child.exitCode} (signal ${child.signalCode}) ` +
          `before ${url} returned 200. Its stderr:\n${stderr.text}`,
      );
    }
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(1000) });
      await response.arrayBuffer();
      if (response.status === 200) {
        return;
      }
      lastProblem = `status ${response.status}`;
    } catch (error) {
      lastProblem = error.cause?.code ?? error.message;
    }
    await sleep(kPollIntervalMs);
  }
  throw new Error(
    `Timed out after ${timeoutMs} ms waiting for ${url} to return 200 (last attempt: ${lastProblem}). ` +
      `The gateway's stderr:\n${stderr.text}`,
  );
}

// Returns the contents of the instance logs in logDir, for a failure report.
export async function readInstanceLogs(logDir) {
  let names;
  try {
    names = await readdir(logDir, { recursive: true });
  } catch {
    return `(no log directory ${logDir})`;
  }
  const parts = [];
  for (const name of names) {
    const file = path.join(logDir, name);
    try {
      const text = await readFile(file, 'utf8');
      parts.push(`--- ${file}\n${text.slice(-kMaxCapturedBytes)}`);
    } catch {
      // A directory, or a file that the gateway removed.
    }
  }
  return parts.join('\n') || `(no files in ${logDir})`;
}
