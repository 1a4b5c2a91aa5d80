/**
 * drkit/policy: this layer's public door. See docs/architecture.md for what it will hold
 * and the issue that brings it; it exports nothing yet.
 * @packageDocumentation
 */
export {};
