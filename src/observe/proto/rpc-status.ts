import protobuf from 'protobufjs';

/*
 * gRPC's rich error model: `google.rpc.Status` carried in the `grpc-status-details-bin` trailer, here
 * with one `google.rpc.RetryInfo` detail. The OTLP/gRPC spec has a server that is overloaded or
 * cannot store the data answer RESOURCE_EXHAUSTED / UNAVAILABLE with a RetryInfo saying when to
 * retry (the Collector's and the Go/Java SDKs' exporters honour its delay). Parsed by protobufjs
 * like the OTLP definitions (proto/otlp.ts); field numbers follow googleapis' google/rpc/*.proto
 * and protobuf's well-known types.
 */

const SOURCE = `
syntax = "proto3";
package google.protobuf;
message Any { string type_url = 1; bytes value = 2; }
message Duration { int64 seconds = 1; int32 nanos = 2; }
`;

const RPC = `
syntax = "proto3";
package google.rpc;
message Status {
  int32 code = 1;
  string message = 2;
  repeated google.protobuf.Any details = 3;
}
message RetryInfo { google.protobuf.Duration retry_delay = 1; }
`;

function buildRoot(): protobuf.Root {
  const root = new protobuf.Root();
  for (const source of [SOURCE, RPC]) protobuf.parse(source, root);
  root.resolveAll();
  return root;
}

const root = buildRoot();

export const RPC_TYPES = {
  status: root.lookupType('google.rpc.Status'),
  retryInfo: root.lookupType('google.rpc.RetryInfo'),
} as const;

export const RETRY_INFO_TYPE_URL = 'type.googleapis.com/google.rpc.RetryInfo';

/** The `grpc-status-details-bin` value of a status whose only detail is a RetryInfo. */
export function statusWithRetryInfo(code: number, message: string, retryDelaySeconds: number): Buffer {
  const retryInfo = RPC_TYPES.retryInfo.encode(
    RPC_TYPES.retryInfo.create({ retryDelay: { seconds: retryDelaySeconds, nanos: 0 } }),
  );
  const status = RPC_TYPES.status.create({
    code,
    message,
    details: [{ typeUrl: RETRY_INFO_TYPE_URL, value: retryInfo.finish() }],
  });
  return Buffer.from(RPC_TYPES.status.encode(status).finish());
}
