// Pod traffic shaping from the kubernetes.io/ingress-bandwidth and
// kubernetes.io/egress-bandwidth annotations (Kubernetes quantities in bits
// per second, e.g. "10M"), as the bandwidth CNI plugin's runtimeConfig wants it.
import { invalidArgument } from '../errors';

export const INGRESS_ANNOTATION = 'kubernetes.io/ingress-bandwidth';
export const EGRESS_ANNOTATION = 'kubernetes.io/egress-bandwidth';

const SUFFIX: Record<string, number> = {
  '': 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};

// The kubelet's own limits for these annotations.
const MIN_BPS = 1e3;
const MAX_BPS = 1e15;

/** Parses a Kubernetes quantity ("10M", "1.5Gi", "500k") into bits per second. */
export function parseBandwidth(annotation: string, value: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(value);
  const factor = m ? SUFFIX[m[2] ?? ''] : undefined;
  if (!m || factor === undefined) throw invalidArgument(`annotation ${annotation}: "${value}" is not a quantity such as "10M"`);
  const bps = Math.round(Number(m[1]) * factor);
  if (bps < MIN_BPS || bps > MAX_BPS)
    throw invalidArgument(`annotation ${annotation}: ${value} is outside the allowed range 1k..1P bits per second`);
  return bps;
}

/** The pod's bandwidth limits, or undefined when it has neither annotation. */
export function bandwidthFromAnnotations(
  annotations: Record<string, string>,
): { ingressRate?: number; egressRate?: number } | undefined {
  const ingress = annotations[INGRESS_ANNOTATION];
  const egress = annotations[EGRESS_ANNOTATION];
  if (ingress === undefined && egress === undefined) return undefined;
  return {
    ...(ingress !== undefined ? { ingressRate: parseBandwidth(INGRESS_ANNOTATION, ingress) } : {}),
    ...(egress !== undefined ? { egressRate: parseBandwidth(EGRESS_ANNOTATION, egress) } : {}),
  };
}
