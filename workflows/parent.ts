// Children report progress to their slot by signal. A slot that is gone
// (retired, terminated) must not make the child fail: it carries on or ends alone.
import { getExternalWorkflowHandle, log, type SignalDefinition } from '@temporalio/workflow';

export async function tellParent<T>(parentId: string, signal: SignalDefinition<[T]>, payload: T): Promise<void> {
  try {
    await getExternalWorkflowHandle(parentId).signal(signal, payload);
  } catch (err) {
    log.warn('could not report progress to the slot', { parentId, signal: signal.name, error: String(err) });
  }
}
