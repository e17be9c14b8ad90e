import {
  context,
  propagation,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type Context,
} from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor, NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import type { TracingSettings } from './config.js';

/**
 * Every span Herald makes comes from this tracer. Until startTracing registers a provider it is
 * OpenTelemetry's no-op tracer, so code that runs once per job may use it unconditionally; code
 * that runs once per update is only wrapped in spans when tracing is configured.
 */
const tracer = () => trace.getTracer('herald');

/** A running trace exporter: `stop` sends the spans still batched before the process exits. */
export interface Tracing {
  stop(): Promise<void>;
}

/**
 * Starts exporting spans over OTLP/HTTP (JSON) when OTEL_EXPORTER_OTLP_ENDPOINT or
 * OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set; with neither, returns null and registers nothing, so
 * every span below stays OpenTelemetry's no-op. One call per process, from its entry point.
 */
export function startTracing(settings: TracingSettings | null, defaultServiceName: string): Tracing | null {
  if (!settings) return null;
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({ 'service.name': settings.serviceName ?? defaultServiceName }),
    spanProcessors: [
      new BatchSpanProcessor(new OTLPTraceExporter({ url: settings.tracesUrl }), {
        scheduledDelayMillis: settings.scheduleDelayMs,
      }),
    ],
  });
  // The AsyncLocalStorage context manager and the W3C trace context propagator, process-wide.
  provider.register();
  return { stop: () => provider.shutdown() };
}

/** The W3C `traceparent` of the active span, to carry in job data or an update; undefined when none (or tracing is off). */
export function activeTraceparent(): string | undefined {
  const carrier: { traceparent?: string } = {};
  propagation.inject(context.active(), carrier);
  return carrier.traceparent;
}

/** The context a carried `traceparent` names: spans started in it are children of the span that wrote it. */
function contextOf(traceparent: string | undefined): Context {
  return traceparent ? propagation.extract(ROOT_CONTEXT, { traceparent }) : ROOT_CONTEXT;
}

/**
 * Runs `work` in a new active span (a child of `traceparent` when given, else of the active span),
 * recording a thrown error on it.
 */
export function inSpan<T>(
  name: string,
  options: { kind: SpanKind; attributes?: Attributes; traceparent?: string },
  work: () => Promise<T>,
): Promise<T> {
  const parent = options.traceparent === undefined ? context.active() : contextOf(options.traceparent);
  return tracer().startActiveSpan(name, { kind: options.kind, attributes: options.attributes }, parent, async (span) => {
    try {
      return await work();
    } catch (error) {
      span.recordException(error as Error);
      span.setStatus({ code: SpanStatusCode.ERROR, message: (error as Error).message });
      throw error;
    } finally {
      span.end();
    }
  });
}

/** Records that an update carrying `traceparent` reached this process's subscribers: one span, a child of its publish. */
export function recordDelivery(traceparent: string, attributes: Attributes): void {
  tracer().startSpan('herald.deliver', { kind: SpanKind.CONSUMER, attributes }, contextOf(traceparent)).end();
}

export { SpanKind };
