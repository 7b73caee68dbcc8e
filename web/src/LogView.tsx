/**
 * A virtualised log: only the lines in view (plus a margin) are in the DOM, so 100,000 lines scroll
 * as smoothly as 100. The window moves in chunks (most scroll events change nothing to render), the
 * visible block is one translated element, and a line re-renders only when its text changes.
 * Follow mode keeps the end in view; scrolling up locks the position.
 */
import { Component } from 'preact';
import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import { parseAnsi } from './ansi';

const LINE = 18;
const CHUNK = 40;

class Line extends Component<{ n: number; text: string }> {
  override shouldComponentUpdate(next: { n: number; text: string }): boolean {
    return next.n !== this.props.n || next.text !== this.props.text;
  }
  override render() {
    const { n, text } = this.props;
    return (
      <div class="log-line">
        <span class="ln" aria-hidden="true">
          {n}
        </span>
        {parseAnsi(text).map((r, j) =>
          r.cls ? (
            <span key={j} class={r.cls}>
              {r.text}
            </span>
          ) : (
            r.text
          ),
        )}
      </div>
    );
  }
}

export function LogView({ lines, label }: { lines: string[]; label: string }) {
  const box = useRef<HTMLDivElement>(null);
  const [start, setStart] = useState(0);
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

  const end = Math.min(lines.length, start + Math.ceil(height / LINE) + 3 * CHUNK);
  const visible = [];
  for (let i = start; i < end; i++) visible.push(<Line key={i} n={i + 1} text={lines[i]!} />);
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
          // setState with an unchanged value renders nothing: only chunk crossings cost a render.
          setStart(Math.max(0, (Math.floor(el.scrollTop / LINE / CHUNK) - 1) * CHUNK));
          const atEnd = el.scrollHeight - el.scrollTop - el.clientHeight < LINE * 2;
          if (!atEnd && follow) setFollow(false);
          else if (atEnd && !follow) setFollow(true);
        }}
      >
        <div class="log-inner" style={{ height: `${lines.length * LINE}px` }}>
          <div class="log-block" style={{ transform: `translateY(${start * LINE}px)` }}>
            {visible}
          </div>
        </div>
      </div>
    </div>
  );
}
