import { declareReasons } from '../core/errors.js';

export const RBAC_REASONS = declareReasons('rbac', {
  systemRole: [
    'rbac.system_role',
    'a system role cannot be deleted, and admin always holds every permission',
  ],
  lastAdmin: [
    'rbac.last_admin',
    'removing this binding would leave no active user with the global admin role',
  ],
  roleTaken: ['rbac.role_taken', 'a role of that name exists'],
  alreadyBound: ['rbac.already_bound', 'the user already has this role (globally or on this project)'],
  severalRoles: ['rbac.several_roles', 'the member has several roles on the project; say which with ?role='],
  notOwner: ['rbac.not_owner', 'only the project owner or an admin may change this setting'],
  tokenOtherProject: ['rbac.token_other_project', 'the token is restricted to another project'],
  notParticipant: [
    'rbac.not_participant',
    'the named user does not exist, is deactivated or cannot read the project',
  ],
  notHeld: ['rbac.not_held', 'a delegator can only delegate a permission they hold on that scope'],
  selfDelegation: ['rbac.self_delegation', 'a user cannot delegate to themselves'],
  globalPermission: ['rbac.global_permission', 'a global permission cannot be delegated on one project'],
  expiryInPast: ['rbac.expiry_in_past', 'expires_at must be in the future'],
  delegationRevoked: ['rbac.delegation_revoked', 'the delegation is already revoked'],
  notDelegator: ['rbac.not_delegator', 'only the delegator or an admin:delegate holder may revoke'],
});
