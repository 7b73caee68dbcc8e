export { type BootstrapResult, bootstrapAdmin } from './bootstrap.js';
export { generatePassword, hashPassword } from './credentials.js';
export { authRoutes } from './routes.js';
export { AuthService, createIdentity, type UserView, userView } from './service.js';
