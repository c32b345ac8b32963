import { useEffect, useReducer, useRef } from "preact/hooks";
import type { Store, Model } from "../store";

/** The store's model; re-renders on every change. */
export function useModel(store: Store): Model {
  const [, bump] = useReducer((n: number, _: void) => n + 1, 0);
  const rendered = store.model;
  useEffect(() => {
    const unsubscribe = store.subscribe(() => bump());
    // A change between this render and the subscription would otherwise be missed.
    if (store.model !== rendered) bump();
    return unsubscribe;
  }, [store]);
  return rendered;
}

/** Focuses the screen's heading when the screen appears, unless a dialog holds the focus. */
export function useScreenFocus<T extends HTMLElement>() {
  const ref = useRef<T>(null);
  useEffect(() => {
    if (document.querySelector('[aria-modal="true"]')) return;
    ref.current?.focus();
  }, []);
  return ref;
}
