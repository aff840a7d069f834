// What the agent imports from the CNI protocol: one entry point, the service
// contract it must implement, and the result and error types it builds.
// Everything else in cni-plugin/ is an implementation detail of these.

export { handleCniRequest, DEFAULT_TIMEOUT_MS } from './protocol.js';
export type { CniRequest, CniResponse, ProtocolOptions } from './protocol.js';
export type {
  AddRequest,
  AttachmentKey,
  AttachmentService,
  CheckRequest,
  DelRequest,
  GcAttachment,
  NetworkSettings,
  ServiceStatus,
} from './service.js';
export type { Dns, InternalResult, ResultInterface, ResultIp, ResultRoute } from './result.js';
export { formatResult, convertPrevResult, parseResult } from './result.js';
export { CniError, CniErrorCode } from './errors.js';
export type { CniErrorJson } from './errors.js';
export { SUPPORTED_VERSIONS, LATEST_VERSION, versionInfo } from './version.js';
export type { CniVersion, CniCommand } from './version.js';
export type { PodIdentity } from './args.js';
