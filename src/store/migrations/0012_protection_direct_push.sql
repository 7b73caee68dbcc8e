-- Branch protection: who may still push straight to a branch whose rule requires approvals or a
-- green pipeline (everyone else must go through a merge request). Admins always may.
ALTER TABLE protected_branches ADD COLUMN allow_direct_push uuid[] NOT NULL DEFAULT '{}';
