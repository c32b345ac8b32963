//! `a * b + c` in one fused instruction where the target has one, and as a multiply and an add
//! where it does not. `f32::mul_add` always rounds once, so on x86-64 without the `fma` target
//! feature (the baseline every distribution builds for) each call goes to libm's `fmaf` through
//! the PLT instead of two inlined instructions, and loops around it cannot be vectorized.
//! (Calldock's patch; vendor/README.md.)

pub(crate) trait Madd {
    fn madd(self, a: Self, b: Self) -> Self;
}

impl Madd for f32 {
    #[inline(always)]
    fn madd(self, a: f32, b: f32) -> f32 {
        #[cfg(any(target_arch = "aarch64", target_feature = "fma"))]
        {
            self.mul_add(a, b)
        }
        #[cfg(not(any(target_arch = "aarch64", target_feature = "fma")))]
        {
            self * a + b
        }
    }
}
