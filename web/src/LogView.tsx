/**
 * A virtualised log: only the lines in view (plus a margin) are in the DOM, so 100,000 lines scroll
 * as smoothly as 100. Follow mode keeps the end in view; scrolling up locks the position.
 */
import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import { parseAnsi } from './ansi';

const LINE = 18;
const MARGIN = 30;

export function LogView({ lines, label }: { lines: string[]; label: string }) {
  const box = useRef<HTMLDivElement>(null);
  const [top, setTop] = useState(0);
  const [height, setHeight] = useState(480);
  const [follow, setFollow] = useState(true);

  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const ro = new ResizeObserver(() => setHeight(el.clientHeight));
    ro.observe(el);
    return () => ro.disconnect();
  }, []);

  useLayoutEffect(() => {
    const el = box.current;
    if (el && follow) el.scrollTop = el.scrollHeight;
  }, [lines.length, follow]);

  const first = Math.max(0, Math.floor(top / LINE) - MARGIN);
  const last = Math.min(lines.length, Math.ceil((top + height) / LINE) + MARGIN);
  const visible = [];
  for (let i = first; i < last; i++) {
    visible.push(
      <div class="log-line" key={i} style={{ top: `${i * LINE}px` }}>
        <span class="ln" aria-hidden="true">
          {i + 1}
        </span>
        {parseAnsi(lines[i]!).map((r, j) =>
          r.cls ? (
            <span key={j} class={r.cls}>
              {r.text}
            </span>
          ) : (
            r.text
          ),
        )}
      </div>,
    );
  }
  return (
    <div class="log-wrap">
      <div class="log-tools">
        <label>
          <input type="checkbox" checked={follow} onChange={(e) => setFollow(e.currentTarget.checked)} />{' '}
          Follow
        </label>
        <span class="muted">{lines.length.toLocaleString()} lines</span>
      </div>
      <div
        class="log"
        ref={box}
        role="log"
        aria-label={label}
        // biome-ignore lint/a11y/noNoninteractiveTabindex: a scrollable region must be reachable by keyboard (axe scrollable-region-focusable)
        tabIndex={0}
        data-testid="log"
        onScroll={(e) => {
          const el = e.currentTarget;
          setTop(el.scrollTop);
          const atEnd = el.scrollHeight - el.scrollTop - el.clientHeight < LINE * 2;
          if (!atEnd && follow) setFollow(false);
          else if (atEnd && !follow) setFollow(true);
        }}
      >
        <div class="log-inner" style={{ height: `${lines.length * LINE}px` }}>
          {visible}
        </div>
      </div>
    </div>
  );
}
