/**
 * drkit/adapters/node: adapters that need Node.js (files, raw devices).
 * @packageDocumentation
 */
