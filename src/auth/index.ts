export { type BootstrapResult, bootstrapAdmin } from './bootstrap.js';
export { generatePassword, hashPassword } from './credentials.js';
export { createAuthModule, createIdentity } from './module.js';
export { authRoutes } from './routes.js';
export { AuthService, type UserView, userView } from './service.js';
