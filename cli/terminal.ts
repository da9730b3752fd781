// What slotctl reads from the operator: the process's streams, a hidden code typed at a
// terminal, one answer line to a question.
import { SlotInputError } from '../common/failures';
import type { Io } from './output';

export const processIo: Io = {
  out: (text) => process.stdout.write(`${text}\n`),
  err: (text) => process.stderr.write(`${text}\n`),
  stdinIsTTY: Boolean(process.stdin.isTTY),
  async readStdin() {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  },
};

/** One answer line: typed at a terminal, or piped in (`echo y | slotctl … --where …`). */
export async function readAnswer(io: Io): Promise<string> {
  if (!io.stdinIsTTY) return io.readStdin();
  const stdin = process.stdin;
  stdin.resume();
  try {
    let line = '';
    for await (const chunk of stdin) {
      line += (chunk as Buffer).toString('utf8');
      if (line.includes('\n')) break;
    }
    return line;
  } finally {
    stdin.pause();
  }
}

/** Reads a code typed at a terminal without echoing it. */
export async function readCodeFromTerminal(io: Io): Promise<string> {
  io.err('Paste the code and press Enter (input is hidden):');
  const stdin = process.stdin;
  stdin.setRawMode?.(true);
  stdin.resume();
  let code = '';
  try {
    for await (const chunk of stdin) {
      for (const ch of (chunk as Buffer).toString('utf8')) {
        if (ch === '\r' || ch === '\n') return code;
        if (ch === '\u0003') throw new SlotInputError('interrupted');
        if (ch === '\u007f') code = code.slice(0, -1);
        else code += ch;
      }
    }
    return code;
  } finally {
    stdin.setRawMode?.(false);
    stdin.pause();
  }
}

/** A secret the operator gives on stdin: hidden at a terminal, else read whole from the pipe. */
export const readSecret = (io: Io): Promise<string> => (io.stdinIsTTY ? readCodeFromTerminal(io) : io.readStdin());
