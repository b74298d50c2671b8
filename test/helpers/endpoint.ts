// The Endpoint a transport test talks to: one route's remote with the pipeline's usual settings
// (no overwrite, 5 s deadline, 50 MB cap, delete after receiving, *.xml), overridable per test.
import type { Endpoint } from '../../transports/types.js';

export function testEndpoint(route: string, remote: string, o: Partial<Endpoint> = {}): Endpoint {
  return {
    route,
    remote,
    overwrite: false,
    timeoutMs: 5000,
    maxSize: 50 * 1024 * 1024,
    afterReceive: { kind: 'delete' },
    include: ['*.xml'],
    ...o,
  };
}
