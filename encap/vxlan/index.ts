// Public surface of the vxlan data plane: the backend the agent constructs,
// and the pure planner and diff (for `weft doctor`-style tools and tests).
export { createVxlanBackend, type VxlanBackend, type VxlanBackendOptions, type ReconcileReport } from './backend.js';
export { planVxlan, vtepName, BRIDGE_NAME, type VxlanPlan, type PlanInput, type UnderlayInfo, type SkippedLease } from './plan.js';
export { diffVxlan, describeOp, type Op, type ActualState } from './diff.js';
export { deriveVtepMac, deriveBridgeMac, normalizeVtepMac } from './vtep-mac.js';
