import { z } from 'zod';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export const isUuid = (value: string): boolean => UUID.test(value);

/** The name rule of users and projects (URL path segments, repository directories). */
export const SLUG = /^[a-z0-9][a-z0-9_.-]{0,62}$/;
export const slugSchema = z
  .string()
  .min(1)
  .max(63)
  .regex(SLUG, 'lower-case letters, digits, ".", "-" and "_", starting with a letter or digit, at most 63');

/** A value inside an ILIKE pattern matches literally. */
export const escapeLike = (value: string): string => value.replace(/[\\%_]/g, (c) => `\\${c}`);
