// slotctl: the operator's CLI, on top of client/. Every command returns an Output that
// one printer writes as text or (--json) one JSON document (output.ts); outcomes and
// failures map to exit codes in one table (exit-codes.ts, docs/operating.md "Exit codes").
import { Command } from 'commander';
import { loadConfig, temporalAddress, temporalConnectionOptions, type Config } from '../host/config';
import { operatorDataConverter } from '../client/codec-client';
import { SlotClient } from '../client/slot-client';
import { configExit, EXIT, failureExit, type ExitCode } from './exit-codes';
import { addHostCommands } from './host-command';
import { addIncidentCommands } from './incident-commands';
import { addMoveCommand } from './move-command';
import { optionsOf, print, type CommandContext, type Io, type Output } from './output';
import { addPoolCommands } from './pool-commands';
import { addSlotCommands } from './slot-commands';
import { processIo } from './terminal';

export { EXIT };

export async function slotctl(argv: string[], io: Io = processIo, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let config: Config;
  try {
    config = loadConfig(env);
  } catch (err) {
    const { code, message } = configExit(err);
    io.err(message);
    return code;
  }
  // Spans of this command (start, signal, update) begin the slot's trace when an exporter is configured.
  // Loaded only then: the OpenTelemetry SDK is not what every command should pay to start.
  const tracing =
    config.tracing.otlpEndpoint || config.tracing.zipkinEndpoint ? (await import('../host/tracing')).startTracing(config.tracing) : undefined;
  // The code travels in an update payload: sealed like everything else, with the keys or by the codec server.
  const operator = operatorDataConverter({
    encryptionKeys: config.encryptionKeys,
    codecUrl: config.codecUrl,
    codecToken: config.codec.bearerToken,
    namespace: config.namespace,
  });
  let client: SlotClient | undefined;
  let exitCode: ExitCode = EXIT.ok;
  const ctx: CommandContext = {
    config,
    io,
    codec: operator.codec,
    connect: async () =>
      (client ??= await SlotClient.connect({
        ...temporalConnectionOptions(config),
        namespace: config.namespace,
        taskQueue: config.taskQueue,
        dataConverter: operator.dataConverter,
        ...(tracing ? { interceptors: tracing.clientInterceptors() } : {}),
      })),
    act:
      <A extends unknown[]>(run: (...args: A) => Promise<Output>) =>
      async (...args: A): Promise<void> => {
        const code = print(io, await run(...args), Boolean(optionsOf(args).json));
        if (code !== EXIT.ok) exitCode = code;
      },
  };

  const program = new Command('slotctl')
    .description('Operate slot-provisioner slots: provision logins, submit codes, watch status.')
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.out(s.trimEnd()), writeErr: (s) => io.err(s.trimEnd()) })
    .showHelpAfterError();
  addSlotCommands(program, ctx);
  addPoolCommands(program, ctx);
  addIncidentCommands(program, ctx);
  addMoveCommand(program, ctx);
  addHostCommands(program, ctx);

  try {
    await program.parseAsync(argv, { from: 'user' });
    return exitCode;
  } catch (err) {
    const { code, message } = failureExit(err, temporalAddress(config));
    if (message !== undefined) io.err(message);
    return code;
  } finally {
    await client?.close();
    await tracing?.flush();
  }
}

if (process.argv[1] && /slotctl(\.ts|\.mjs)?$/.test(process.argv[1])) {
  process.exitCode = await slotctl(process.argv.slice(2));
}
