// Running commands for the lab: one-shot `run` and long-running `LabProcess`.
//
// Both use node:child_process with argv arrays (never a shell string), so
// names and paths are never parsed by a shell. A one-shot command throws an
// error that quotes its argv and stderr, because a lab failure is only useful
// when it says which `ip` call broke and why. Long-running processes keep their
// output in memory so tests can wait for a line and print it on failure.
import { spawn, type ChildProcess } from 'node:child_process';
import { constants } from 'node:os';

export interface ExecOptions {
  /** Written to stdin, which is then closed. */
  input?: string;
  /** Kills the command (SIGKILL) and fails after this long. Default 30 s. */
  timeoutMs?: number;
  /** Added to (and overriding) the inherited environment. */
  env?: Record<string, string>;
  /** Resolve with the exit code instead of throwing on a non-zero exit. */
  allowFail?: boolean;
}

export interface ExecResult {
  stdout: string;
  stderr: string;
  code: number;
}

export interface SpawnOptions {
  env?: Record<string, string>;
  /** Keep stdin open as a pipe (default: ignored). */
  stdin?: boolean;
}

export class ExecError extends Error {
  constructor(
    readonly argv: readonly string[],
    readonly result: ExecResult,
    reason: string,
  ) {
    super(`${reason}: ${argv.join(' ')}\n${tail(result.stderr || result.stdout, 2000)}`.trimEnd());
    this.name = 'ExecError';
  }
}

const DEFAULT_TIMEOUT_MS = 30_000;
/** Bound on captured output per stream, so a chatty daemon cannot eat the test's memory. */
const MAX_CAPTURE = 4 * 1024 * 1024;

function tail(text: string, max: number): string {
  return text.length <= max ? text : `…${text.slice(-max)}`;
}

function mergedEnv(env: Record<string, string> | undefined): NodeJS.ProcessEnv {
  return env ? { ...process.env, ...env } : process.env;
}

/** Runs argv to completion and collects its output. */
export function run(argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const [cmd, ...args] = argv;
  if (cmd === undefined) return Promise.reject(new Error('run: empty argv'));
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      env: mergedEnv(opts.env),
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    if (opts.input !== undefined && child.stdin) {
      // A command that exits without reading stdin makes the write fail with EPIPE; its exit code tells the story.
      child.stdin.on('error', () => undefined);
      child.stdin.end(opts.input);
    }
    const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${argv.join(' ')}: ${err.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      // Killed by a signal: report it the way a shell would (128 + signal number).
      const result = { stdout, stderr, code: code ?? 128 + (signal ? constants.signals[signal] : 0) };
      if (timedOut) reject(new ExecError(argv, result, `timed out after ${timeoutMs} ms`));
      else if (result.code !== 0 && !opts.allowFail) {
        reject(new ExecError(argv, result, `exit ${signal ?? result.code}`));
      } else resolve(result);
    });
  });
}

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A long-running child (etcd, an agent, a holder) with its output captured. */
export class LabProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly exited: Promise<ExitStatus>;
  private out = '';
  private err = '';
  private exitStatus: ExitStatus | undefined;
  private readonly listeners = new Set<() => void>();

  constructor(
    readonly argv: readonly string[],
    opts: SpawnOptions = {},
  ) {
    const [cmd, ...args] = argv;
    if (cmd === undefined) throw new Error('spawn: empty argv');
    this.child = spawn(cmd, args, {
      env: mergedEnv(opts.env),
      stdio: [opts.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    });
    // Attached before any throw below: an 'error' event without a listener would crash the test process.
    this.child.on('error', (e) => {
      this.err += `\n[spawn error] ${e.message}`;
    });
    if (this.child.pid === undefined) {
      // spawn reports ENOENT asynchronously; without a pid there is nothing to track.
      throw new Error(`cannot spawn ${argv.join(' ')}`);
    }
    this.pid = this.child.pid;
    this.child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      this.out = tail(this.out + d, MAX_CAPTURE);
      this.notify();
    });
    this.child.stderr?.setEncoding('utf8').on('data', (d: string) => {
      this.err = tail(this.err + d, MAX_CAPTURE);
      this.notify();
    });
    this.exited = new Promise((resolve) => {
      // 'exit', not 'close': a daemon's own children may keep the pipes open long after it is gone.
      this.child.on('exit', (code, signal) => {
        this.exitStatus = { code, signal };
        this.notify();
        resolve(this.exitStatus);
      });
    });
  }

  get stdout(): string {
    return this.out;
  }

  get stderr(): string {
    return this.err;
  }

  get running(): boolean {
    return this.exitStatus === undefined;
  }

  private notify(): void {
    for (const l of this.listeners) l();
  }

  /** Resolves with the first match in stdout or stderr; rejects on exit or timeout with the output tail. */
  waitForOutput(pattern: RegExp, timeoutMs = 10_000): Promise<RegExpMatchArray> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        const m = this.out.match(pattern) ?? this.err.match(pattern);
        if (m) {
          done();
          resolve(m);
          return true;
        }
        if (this.exitStatus) {
          done();
          reject(this.failure(`exited (${this.exitStatus.signal ?? this.exitStatus.code}) before printing ${pattern}`));
          return true;
        }
        return false;
      };
      const timer = setTimeout(() => {
        done();
        reject(this.failure(`no ${pattern} within ${timeoutMs} ms`));
      }, timeoutMs);
      const listener = (): void => void check();
      const done = (): void => {
        clearTimeout(timer);
        this.listeners.delete(listener);
      };
      if (!check()) this.listeners.add(listener);
    });
  }

  /** An error naming the command with the tail of its output, for readiness failures. */
  failure(reason: string): Error {
    return new Error(
      `${this.argv.join(' ')}: ${reason}\n--- stderr ---\n${tail(this.err, 3000)}\n--- stdout ---\n${tail(this.out, 1000)}`,
    );
  }

  /** Sends a signal by PID if the process still runs. */
  kill(signal: NodeJS.Signals = 'SIGTERM'): void {
    if (!this.running) return;
    try {
      process.kill(this.pid, signal);
    } catch {
      // ESRCH: it exited between the check and the signal.
    }
  }

  /** SIGTERM (and SIGCONT, in case it is frozen), then SIGKILL after `graceMs`; waits for the exit. */
  async stop(graceMs = 2000): Promise<ExitStatus> {
    if (!this.running) return this.exited;
    this.kill('SIGTERM');
    this.kill('SIGCONT');
    const timer = setTimeout(() => this.kill('SIGKILL'), graceMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }
}
