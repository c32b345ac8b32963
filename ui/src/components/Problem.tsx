// An error as a person reads it: what happened, what to do, a button that does it, and the
// technical details folded away.

import type { Fix, Problem } from "../logic/errors";
import { Icon } from "./icons";

export interface FixHandlers {
  sign_in?: () => void;
  settings?: () => void;
  retry?: () => void;
  devices?: () => void;
  reload?: () => void;
}

const FIX_LABEL: Record<Exclude<Fix, null>, string> = {
  sign_in: "Sign in again",
  settings: "Open settings",
  retry: "Try again",
  devices: "Choose a device",
  reload: "Reload",
};

interface Props {
  problem: Pick<Problem, "title" | "action" | "detail" | "fix">;
  tone?: "info" | "warn" | "error";
  fixes?: FixHandlers;
  onDismiss?: () => void;
  /** role="alert" for problems that appear by themselves; "status" for calm ones. */
  live?: "alert" | "status" | "none";
  id?: string;
}

export function ProblemView({ problem, tone = "error", fixes = {}, onDismiss, live = "alert", id }: Props) {
  const fix = problem.fix ? fixes[problem.fix] : undefined;
  const role = live === "none" ? undefined : live;
  return (
    <div class={`problem tone-${tone}`} role={role} id={id}>
      <Icon name={tone === "info" ? "check" : "warn"} class="problem-icon" />
      <div class="problem-body">
        <p class="problem-title">{problem.title}</p>
        {problem.action && <p class="problem-action">{problem.action}</p>}
        {problem.detail && (
          <details class="problem-detail">
            <summary>Details</summary>
            <p>{problem.detail}</p>
          </details>
        )}
      </div>
      <div class="problem-buttons">
        {fix && problem.fix && (
          <button type="button" class="button small" onClick={fix}>
            {FIX_LABEL[problem.fix]}
          </button>
        )}
        {onDismiss && (
          <button type="button" class="button small quiet" onClick={onDismiss} aria-label={`Dismiss: ${problem.title}`}>
            <Icon name="cross" />
          </button>
        )}
      </div>
    </div>
  );
}
