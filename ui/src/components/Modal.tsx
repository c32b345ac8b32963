// A modal dialog: focus moves in, Tab and Shift+Tab wrap inside it, and focus returns to where it
// was when it closes. The rest of the page is made `inert` by the App while a modal is open.

import type { ComponentChildren } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";

// The last element focused outside any dialog: where focus returns when a dialog closes. Kept
// by a listener because making the page behind a dialog `inert` blurs it before the dialog's
// effects run.
let lastOutside: HTMLElement | null = null;
if (typeof document !== "undefined") {
  document.addEventListener("focusin", (e) => {
    if (e.target instanceof HTMLElement && !e.target.closest('[aria-modal="true"]')) lastOutside = e.target;
  });
}

const FOCUSABLE =
  'a[href], button:not([disabled]), input:not([disabled]):not([type="hidden"]), select:not([disabled]), textarea:not([disabled]), [tabindex]:not([tabindex="-1"])';

export function focusables(root: HTMLElement): HTMLElement[] {
  return Array.from(root.querySelectorAll<HTMLElement>(FOCUSABLE)).filter(
    (el) => !el.closest("[inert]") && el.getClientRects().length > 0,
  );
}

interface Props {
  labelledBy: string;
  describedBy?: string;
  role?: "dialog" | "alertdialog";
  /** Escape closes (settings). The incoming dialog leaves Escape to the call shortcuts. */
  onEscape?: () => void;
  /** A selector for what gets focus first; the first focusable element otherwise. */
  initialFocus?: string;
  /** Another modal is on top of this one. */
  covered?: boolean;
  class?: string;
  children: ComponentChildren;
}

export function Modal(props: Props) {
  const ref = useRef<HTMLDivElement>(null);
  const covered = useRef(props.covered ?? false);
  covered.current = props.covered ?? false;
  // Read while rendering, before the page behind turns inert.
  const [opener] = useState(() => (document.activeElement instanceof HTMLElement && document.activeElement !== document.body ? document.activeElement : lastOutside));

  useEffect(() => {
    const el = ref.current;
    if (!el) return;
    const previous = opener;
    const initial = (props.initialFocus ? el.querySelector<HTMLElement>(props.initialFocus) : null) ?? focusables(el)[0] ?? el;
    initial.focus();
    // Focus that lands outside (a click on the page behind, a screen reader's jump) comes back.
    const keepInside = (e: FocusEvent) => {
      if (covered.current || !(e.target instanceof Node) || el.contains(e.target)) return;
      (focusables(el)[0] ?? el).focus();
    };
    document.addEventListener("focusin", keepInside);
    return () => {
      document.removeEventListener("focusin", keepInside);
      setTimeout(() => {
        const now = document.activeElement;
        if (now && now !== document.body && document.contains(now)) return;
        if (previous && document.contains(previous) && !previous.closest("[inert]")) previous.focus();
        else document.querySelector<HTMLElement>("main h1")?.focus();
      }, 0);
    };
  }, []);

  const onKeyDown = (e: KeyboardEvent) => {
    const el = ref.current;
    if (!el || covered.current) return;
    if (e.key === "Escape" && props.onEscape) {
      e.preventDefault();
      e.stopPropagation();
      props.onEscape();
      return;
    }
    if (e.key !== "Tab") return;
    const items = focusables(el);
    if (items.length === 0) {
      e.preventDefault();
      el.focus();
      return;
    }
    const first = items[0]!;
    const last = items[items.length - 1]!;
    const active = document.activeElement;
    if (e.shiftKey && (active === first || active === el)) {
      e.preventDefault();
      last.focus();
    } else if (!e.shiftKey && active === last) {
      e.preventDefault();
      first.focus();
    }
  };

  return (
    <div class="backdrop" inert={props.covered}>
      <div
        ref={ref}
        class={`modal ${props.class ?? ""}`}
        role={props.role ?? "dialog"}
        aria-modal="true"
        aria-labelledby={props.labelledBy}
        aria-describedby={props.describedBy}
        tabIndex={-1}
        onKeyDown={onKeyDown}
      >
        {props.children}
      </div>
    </div>
  );
}
