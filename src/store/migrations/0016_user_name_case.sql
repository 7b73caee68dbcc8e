-- User names keep the case they were given (as Gitea does), are unique ignoring case, and every
-- lookup (login, Basic auth, member and role addressing, the CLI) compares lower(name).
ALTER TABLE users DROP CONSTRAINT users_name_slug;
ALTER TABLE users ADD CONSTRAINT users_name_slug CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$');
ALTER TABLE users DROP CONSTRAINT users_name_key;
CREATE UNIQUE INDEX users_name_lower_key ON users (lower(name));
