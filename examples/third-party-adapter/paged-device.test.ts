// How a third party checks their adapter against drkit's contract: one call.
// Run with vitest, like any test file (`npx vitest run examples/`).
import { describeBlockDevice } from 'drkit/testing';
import { openPagedDevice } from './paged-device.js';

describeBlockDevice({
  name: 'PagedDevice (third-party example)',
  create: ({ byteLength }) => openPagedDevice(byteLength),
});
