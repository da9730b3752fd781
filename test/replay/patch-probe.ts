// A workflow interceptor module for replay only: reports every patch decision the
// workflow code takes (patch id, and whether the new branch was taken) through a sink
// that is called during replay, so the replay test knows which branch of every
// `patched()` each recorded history exercises. It adds no commands.
import { proxySinks, type Sinks, type WorkflowInterceptors } from '@temporalio/workflow';

export interface PatchSinks extends Sinks {
  patches: {
    /** `used`: the new branch (true) or the old one (false). */
    decided(patchId: string, used: boolean): void;
  };
}

type PatchingActivator = { patchInternal(patchId: string, deprecated: boolean): boolean; __patchProbe?: true };

export const interceptors = (): WorkflowInterceptors => {
  const { patches } = proxySinks<PatchSinks>();
  // @temporalio/workflow 1.24: `patched()` and `deprecatePatch()` both end in the activator's
  // patchInternal; the activator of this workflow is set before its interceptors are made.
  const activator = (globalThis as { __TEMPORAL_ACTIVATOR__?: PatchingActivator }).__TEMPORAL_ACTIVATOR__;
  if (!activator || typeof activator.patchInternal !== 'function') throw new Error('patch-probe: no workflow activator with patchInternal (has @temporalio/workflow changed?)');
  if (!activator.__patchProbe) {
    const decide = activator.patchInternal.bind(activator);
    activator.patchInternal = (patchId, deprecated) => {
      const used = decide(patchId, deprecated);
      patches.decided(patchId, used);
      return used;
    };
    activator.__patchProbe = true;
  }
  return {};
};
