export { createWebModule } from './module.js';
export { isReservedPath } from './paths.js';
