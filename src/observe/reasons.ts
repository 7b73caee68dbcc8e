import { declareReasons } from '../core/errors.js';

export const OBSERVE_REASONS = declareReasons('observe', {
  unsupportedContentType: [
    'observe.unsupported_content_type',
    'the OTLP body must be application/x-protobuf or application/json',
  ],
  unsupportedEncoding: ['observe.unsupported_encoding', 'the Content-Encoding must be gzip or identity'],
  bodyTooLarge: ['observe.body_too_large', 'the OTLP body (sent or decompressed) exceeds the ingest limit'],
  badGzip: ['observe.bad_gzip', 'the gzip body is truncated or corrupt'],
  malformedProtobuf: ['observe.malformed_protobuf', 'the body is not a valid OTLP protobuf export request'],
  malformedJson: ['observe.malformed_json', 'the body is not a valid OTLP/JSON export request'],
  bufferFull: ['observe.buffer_full', 'the ingest buffer is full; retry after the Retry-After seconds'],
  storeUnavailable: ['observe.store_unavailable', 'the telemetry could not be written; retry later'],
  nothingPermitted: [
    'observe.project_not_permitted',
    'no record of the request may be written by this credential (observe:write on its project)',
  ],
  badTimeRange: ['observe.bad_time_range', 'the time range is empty or too large for the step'],
  traceNotFound: ['observe.trace_not_found', 'no trace with this id'],
  unknownMetric: ['observe.unknown_metric', 'no metric series of this name matches'],
});
