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

/** Spans to several processors at once (one per exporter). */
class FanOut implements SpanProcessor {
  constructor(private readonly processors: readonly SpanProcessor[]) {}
  onStart(...args: Parameters<SpanProcessor['onStart']>): void {
    for (const p of this.processors) p.onStart(...args);
  }
  onEnd(span: ReadableSpan): void {
    for (const p of this.processors) p.onEnd(span);
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
