export type { RequestCredentials } from './authenticate.js';
export { type BootstrapResult, bootstrapAdmin } from './bootstrap.js';
export { generatePassword, hashPassword } from './credentials.js';
export { createAuthModule, createIdentity } from './module.js';
export { AUTH_REASONS } from './reasons.js';
export { authRoutes } from './routes.js';
export { USER_NAME, userNameSchema } from './schemas.js';
export { AuthService } from './service.js';
export { type UserView, userView } from './users.js';
