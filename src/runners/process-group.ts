/**
 * The process groups of a sandbox and the pid files that let a restarted platform find and kill
 * the groups a crashed one left behind, telling a recycled pid apart by the leader's start time.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';

export function killGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // ESRCH: the group is already gone
  }
}

export interface PidRecord {
  pgid: number;
  /** Leader start time in clock ticks since boot (/proc/<pid>/stat field 22): tells a recycled pid apart. */
  startTime: string | null;
  runId: string;
}

export async function writePidFile(file: string, pgid: number, runId: string): Promise<void> {
  const record: PidRecord = { pgid, startTime: readProcStat(pgid)?.startTime ?? null, runId };
  try {
    // The directory is made with the workspace: a workspace removed meanwhile is not re-created.
    await writeFile(file, `${JSON.stringify(record)}\n`, { mode: 0o600 });
  } catch {
    // The workspace was removed meanwhile; there is nothing left to clean up after a crash either.
  }
}

export function parsePidFile(text: string): PidRecord | null {
  try {
    const value = JSON.parse(text) as Partial<PidRecord>;
    if (typeof value.pgid !== 'number' || !Number.isInteger(value.pgid) || value.pgid <= 1) return null;
    return {
      pgid: value.pgid,
      startTime: typeof value.startTime === 'string' ? value.startTime : null,
      runId: typeof value.runId === 'string' ? value.runId : '',
    };
  } catch {
    return null;
  }
}

export interface ProcStat {
  pgrp: number;
  session: number;
  startTime: string;
}

export function readProcStat(pid: number): ProcStat | null {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces and parentheses: fields are counted after the last ')'.
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    const pgrp = Number(fields[2]);
    const session = Number(fields[3]);
    const startTime = fields[19];
    if (!Number.isInteger(pgrp) || !Number.isInteger(session) || !startTime) return null;
    return { pgrp, session, startTime };
  } catch {
    return null;
  }
}

/**
 * Kills a recorded group only when it is still ours: the leader is alive, leads its own group and
 * session (our steps start with setsid) and started when recorded; or, the leader having exited, some
 * process is still in that group and session and started no earlier than the leader — a pid cannot be
 * reused while a group with that id exists, so such members can only be leftovers of the step.
 */
export function killRecordedGroup(record: PidRecord): boolean {
  const { pgid } = record;
  const leader = readProcStat(pgid);
  if (leader) {
    if (leader.pgrp !== pgid || leader.session !== pgid) return false;
    if (record.startTime !== null && leader.startTime !== record.startTime) return false;
    killGroup(pgid, 'SIGKILL');
    return true;
  }
  const members = groupMembers(pgid).filter(
    (m) =>
      m.session === pgid && (record.startTime === null || BigInt(m.startTime) >= BigInt(record.startTime)),
  );
  if (members.length === 0) return false;
  killGroup(pgid, 'SIGKILL');
  return true;
}

export function groupMembers(pgid: number): ProcStat[] {
  const members: ProcStat[] = [];
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return members;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = readProcStat(Number(entry));
    if (stat && stat.pgrp === pgid) members.push(stat);
  }
  return members;
}

export async function waitForGroupGone(pgid: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      process.kill(-pgid, 0);
    } catch {
      return;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}
