// OpenTelemetry traces: Temporal's interceptors carry one trace from the client that
// starts or signals a slot through its workflow to the activities (and our own spans
// around PTY sessions and token requests, activities/spans.ts), exported over OTLP
// and/or to Zipkin when their endpoints are configured. No attribute holds a token.
import type { Context as ActivityContext } from '@temporalio/activity';
import type { WorkflowClientInterceptor } from '@temporalio/client';
import {
  makeWorkflowExporter,
  OpenTelemetryActivityInboundInterceptor,
  OpenTelemetryActivityOutboundInterceptor,
  OpenTelemetryWorkflowClientInterceptor,
} from '@temporalio/interceptors-opentelemetry';
import type { ActivityInterceptorsFactory, InjectedSinks } from '@temporalio/worker';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { ZipkinExporter } from '@opentelemetry/exporter-zipkin';
import { Resource } from '@opentelemetry/resources';
import { BatchSpanProcessor, type ReadableSpan, type SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';

export { WORKFLOW_TRACING_MODULE } from './workflow-tracing-module';

export interface TracingConfig {
  /** OTLP/HTTP base URL (`…:4318`); spans go to `<it>/v1/traces`. */
  readonly otlpEndpoint: string | undefined;
  /** Zipkin's span intake, `http://host:9411/api/v2/spans`. */
  readonly zipkinEndpoint: string | undefined;
  /** `service.name` of every span. */
  readonly serviceName: string;
}

export interface SlotTracing {
  /** For every worker's `interceptors.activity`. */
  readonly activityInterceptor: ActivityInterceptorsFactory;
  /** For the worker that runs workflows: where workflow spans leave the sandbox. */
  readonly sinks: InjectedSinks<Record<string, never>>;
  /** For a `Client`'s `interceptors.workflow`: start, signal, update and query carry the trace. */
  clientInterceptors(): WorkflowClientInterceptor[];
  /** Sends what is buffered (before a short-lived process such as slotctl exits). */
  flush(): Promise<void>;
  shutdown(): Promise<void>;
}

/**
 * The span as exported: without failure text. Temporal's interceptors put an activity's or
 * workflow's failure message in the span status and record the exception (message, stack),
 * in clear, where the payload codec would have encrypted them in history; the message of a
 * login failure can carry the CLI's screen. Kept: that it failed, and the error's type.
 */
export function withoutFailureText(span: ReadableSpan): ReadableSpan {
  const failed = span.status.message !== undefined && span.status.message !== '';
  const exceptions = span.events.some((e) => e.name === 'exception');
  if (!failed && !exceptions) return span;
  const status = failed ? { ...span.status, message: 'failed (the failure is in the workflow history)' } : span.status;
  const events = span.events.map((event) => {
    if (event.name !== 'exception' || event.attributes === undefined) return event;
    const type = event.attributes['exception.type'];
    return { ...event, attributes: type === undefined ? {} : { 'exception.type': type } };
  });
  return new Proxy(span, {
    get(target, prop, receiver) {
      if (prop === 'status') return status;
      if (prop === 'events') return events;
      return Reflect.get(target, prop, receiver) as unknown;
    },
  });
}

/** Spans to several processors at once (one per exporter), without failure text. */
class FanOut implements SpanProcessor {
  constructor(private readonly processors: readonly SpanProcessor[]) {}
  onStart(...args: Parameters<SpanProcessor['onStart']>): void {
    for (const p of this.processors) p.onStart(...args);
  }
  onEnd(span: ReadableSpan): void {
    const exported = withoutFailureText(span);
    for (const p of this.processors) p.onEnd(exported);
  }
  async forceFlush(): Promise<void> {
    await Promise.all(this.processors.map((p) => p.forceFlush()));
  }
  async shutdown(): Promise<void> {
    await Promise.all(this.processors.map((p) => p.shutdown()));
  }
}

let installed: SlotTracing | undefined;

/**
 * Registers the process's tracer provider (once per process; later calls return the
 * first) when an endpoint is configured; undefined when none is: tracing costs nothing then.
 */
export function startTracing(config: TracingConfig): SlotTracing | undefined {
  if (installed) return installed;
  const processors: SpanProcessor[] = [];
  if (config.otlpEndpoint) processors.push(new BatchSpanProcessor(new OTLPTraceExporter({ url: new URL('v1/traces', withSlash(config.otlpEndpoint)).href })));
  if (config.zipkinEndpoint) processors.push(new BatchSpanProcessor(new ZipkinExporter({ url: config.zipkinEndpoint, serviceName: config.serviceName })));
  if (processors.length === 0) return undefined;
  const resource = new Resource({ 'service.name': config.serviceName });
  const processor = new FanOut(processors);
  const provider = new NodeTracerProvider({ resource, spanProcessors: [processor] });
  // Global: the activity interceptor, our own spans and the W3C propagator all use it.
  provider.register();
  installed = {
    activityInterceptor: (ctx: ActivityContext) => ({
      inbound: new OpenTelemetryActivityInboundInterceptor(ctx),
      outbound: new OpenTelemetryActivityOutboundInterceptor(ctx),
    }),
    sinks: { exporter: makeWorkflowExporter(processor, resource) } as unknown as InjectedSinks<Record<string, never>>,
    clientInterceptors: () => [new OpenTelemetryWorkflowClientInterceptor()],
    flush: () => provider.forceFlush(),
    shutdown: async () => {
      await provider.shutdown();
      installed = undefined;
    },
  };
  return installed;
}

const withSlash = (url: string): string => (url.endsWith('/') ? url : `${url}/`);
