import { describe, expect, it } from "vitest";
import { callElapsed, countdownText, formatDuration, ringFraction, secondsLeft, spokenDuration } from "./time";

describe("ring countdown", () => {
  const deadline = 1_000_000 + 60_000;
  it("starts at 60 and rounds partial seconds up", () => {
    expect(secondsLeft(deadline, 1_000_000)).toBe(60);
    expect(secondsLeft(deadline, 1_000_001)).toBe(60);
    expect(secondsLeft(deadline, 1_000_999)).toBe(60);
    expect(secondsLeft(deadline, 1_001_000)).toBe(59);
    expect(secondsLeft(deadline, deadline - 1)).toBe(1);
  });
  it("stops at zero and never goes negative", () => {
    expect(secondsLeft(deadline, deadline)).toBe(0);
    expect(secondsLeft(deadline, deadline + 5_000)).toBe(0);
  });
  it("clamps a deadline too far ahead (a skewed clock) to 60", () => {
    expect(secondsLeft(deadline + 3_600_000, 1_000_000)).toBe(60);
  });
  it("treats nonsense as zero", () => {
    expect(secondsLeft(Number.NaN, 0)).toBe(0);
  });
  it("gives a fraction for the bar", () => {
    expect(ringFraction(deadline, 1_000_000)).toBe(1);
    expect(ringFraction(deadline, 1_030_000)).toBe(0.5);
    expect(ringFraction(deadline, deadline)).toBe(0);
  });
  it("says it in words", () => {
    expect(countdownText(42)).toBe("42 s left to answer");
    expect(countdownText(0)).toBe("Stops ringing now");
  });
});

describe("call timer", () => {
  it("formats minutes and hours", () => {
    expect(formatDuration(0)).toBe("0:00");
    expect(formatDuration(5_400)).toBe("0:05");
    expect(formatDuration(65_000)).toBe("1:05");
    expect(formatDuration(754_000)).toBe("12:34");
    expect(formatDuration(3_723_000)).toBe("1:02:03");
  });
  it("never shows negative or NaN time", () => {
    expect(formatDuration(-5_000)).toBe("0:00");
    expect(formatDuration(Number.NaN)).toBe("0:00");
  });
  it("counts from connection, not from ringing, and stops at the end", () => {
    expect(callElapsed(null, null, 10_000)).toBe(0);
    expect(callElapsed(1_000, null, 10_000)).toBe(9_000);
    expect(callElapsed(1_000, 4_000, 10_000)).toBe(3_000);
    expect(callElapsed(10_000, null, 9_000)).toBe(0);
  });
  it("speaks durations", () => {
    expect(spokenDuration(0)).toBe("0 seconds");
    expect(spokenDuration(61_000)).toBe("1 minute 1 second");
    expect(spokenDuration(3_720_000)).toBe("1 hour 2 minutes");
  });
});
