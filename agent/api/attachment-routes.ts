// The attachment calls of the agent API, as a route table to merge into the
// one `startApiServer` serves. Thin on purpose: the service validates bodies
// and throws WeftErrors, which the server turns into `{error:{code,...}}`.
//
//   POST /v1/attach       AttachRequest  → Attachment
//   POST /v1/detach       DetachRequest  → DetachReply   (idempotent)
//   POST /v1/check        DetachRequest  → CheckReply    (NOT_FOUND when unknown)
//   GET  /v1/attachments                 → AttachmentList (dead ones marked stale)

import type { AttachmentService } from '../attachments/service.js';
import { type SweepKernel, listWithLiveness } from '../attachments/sweep.js';
import type { Routes } from './server.js';

export function attachmentRoutes(service: AttachmentService, kernel: SweepKernel): Routes {
  return {
    'POST /v1/attach': (body) => service.attach(body),
    'POST /v1/detach': (body) => service.detach(body),
    'POST /v1/check': (body) => service.check(body),
    'GET /v1/attachments': () => listWithLiveness(service, kernel),
  };
}
