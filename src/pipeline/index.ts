export { createPushPipeline, DEFINITION_FILE } from './trigger.js';
