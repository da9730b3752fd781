// Where the workflow side of the tracing interceptors lives, for a workflow bundle built
// with tracing. A module of its own so that naming it loads no OpenTelemetry: the worker
// imports host/tracing.ts (and its exporters) only when an endpoint is configured.
import { createRequire } from 'node:module';

/** Bundled into the workflow code when tracing is on: the workflow side of the interceptors. */
export const WORKFLOW_TRACING_MODULE = createRequire(import.meta.url).resolve('@temporalio/interceptors-opentelemetry/lib/workflow-interceptors');
