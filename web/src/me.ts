import { createContext } from 'preact';
import { useContext } from 'preact/hooks';
import type { S } from './api/client';

export const MeContext = createContext<{ me: S['Me'] | null; refresh: () => Promise<void> }>({
  me: null,
  refresh: async () => {},
});
export const useMe = () => useContext(MeContext);
export const can = (me: S['Me'] | null, permission: string) =>
  !!me?.permissions.includes(permission as never);
