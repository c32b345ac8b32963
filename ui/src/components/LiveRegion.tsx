// Screen-reader announcements: polite for call states and mute, assertive for incoming calls and
// device trouble. Each sentence is a new node (keyed by its number), so repeats are read again.

export function LiveRegions({ polite, assertive }: { polite: { text: string; n: number }; assertive: { text: string; n: number } }) {
  return (
    <div class="visually-hidden">
      <div role="status" aria-live="polite" aria-atomic="true" id="live-polite">
        {polite.text && <p key={polite.n}>{polite.text}</p>}
      </div>
      <div role="alert" aria-live="assertive" aria-atomic="true" id="live-assertive">
        {assertive.text && <p key={assertive.n}>{assertive.text}</p>}
      </div>
    </div>
  );
}
