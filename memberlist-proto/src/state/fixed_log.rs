//! Logarithms in fixed-point integer arithmetic.
//!
//! Go memberlist computes its timeouts with `math.Log10` and `math.Log` on float64. The results
//! are rounded to whole milliseconds, but floats are not guaranteed to round the same way on every
//! machine and compiler, and a simulator that must replay byte for byte cannot afford one
//! millisecond of difference. These functions compute the same quantities exactly enough with
//! integers only: `log2` with 56 fractional bits by repeated squaring, from which `log10` and log
//! ratios follow by multiplication.

/// Fractional bits of the fixed-point results.
pub const FRAC_BITS: u32 = 56;
/// 1.0 in the fixed-point format.
pub const ONE: u128 = 1 << FRAC_BITS;

/// log10(2) with 62 fractional bits: ⌊0.30102999566398119521… · 2^62⌋.
const LOG10_2_Q62: u128 = 1_388_255_822_130_839_283;

/// log2(n) for n ≥ 1, with [`FRAC_BITS`] fractional bits (truncated). log2(0) is taken as 0.
///
/// The integer part is the position of the highest set bit. For the fraction, y = n / 2^k lies
/// in [1, 2); squaring y doubles its logarithm, so each squaring that lands in [2, 4) yields a 1
/// bit (and y is halved back into [1, 2)), otherwise a 0 bit.
pub fn log2_fixed(n: u64) -> u128 {
    if n <= 1 {
        return 0;
    }
    let k = 63 - n.leading_zeros();
    // y in [1, 2) with 62 fractional bits.
    const Y_BITS: u32 = 62;
    let mut y: u128 = (u128::from(n) << Y_BITS) >> k;
    let mut frac: u128 = 0;
    for bit in (0..FRAC_BITS).rev() {
        y = (y * y) >> Y_BITS;
        if y >= 2 << Y_BITS {
            y >>= 1;
            frac |= 1 << bit;
        }
    }
    (u128::from(k) << FRAC_BITS) | frac
}

/// ⌊1000 · log10(n)⌋ for n ≥ 1 (0 for n = 0).
///
/// Exact powers of ten are recognised so that, for example, n = 100 gives exactly 2000 even
/// though the fixed-point logarithm sits a hair below 2.
pub fn log10_milli(n: u64) -> u64 {
    if n <= 1 {
        return 0;
    }
    let mut p = 1u64;
    let mut digits = 0u64;
    while let Some(next) = p.checked_mul(10) {
        if next > n {
            break;
        }
        p = next;
        digits += 1;
    }
    if p == n {
        return 1000 * digits;
    }
    // log10(n) = log2(n) · log10(2); both factors fit u128 products (< 2^62 · 2^61).
    let log10_q = (log2_fixed(n) * LOG10_2_Q62) >> 62;
    u64::try_from((log10_q * 1000) >> FRAC_BITS).unwrap_or(u64::MAX)
}

/// ln(a) / ln(b) with [`FRAC_BITS`] fractional bits, for a ≥ 1 and b ≥ 2. The base of the
/// logarithms cancels, so it is log2(a) / log2(b).
pub fn log_ratio_fixed(a: u64, b: u64) -> u128 {
    let den = log2_fixed(b);
    if den == 0 {
        return 0;
    }
    (log2_fixed(a) << FRAC_BITS) / den
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log2_is_exact_on_powers_of_two_and_close_elsewhere() {
        for k in 0u32..63 {
            assert_eq!(log2_fixed(1 << k), u128::from(k) << FRAC_BITS);
        }
        for n in [3u64, 5, 7, 10, 1000, 12345, 999_999_937] {
            let got = log2_fixed(n) as f64 / ONE as f64;
            assert!((got - (n as f64).log2()).abs() < 1e-12, "{n}: {got}");
        }
    }

    #[test]
    fn log10_milli_matches_float_floor() {
        assert_eq!(log10_milli(1), 0);
        assert_eq!(log10_milli(10), 1000);
        assert_eq!(log10_milli(100), 2000);
        assert_eq!(log10_milli(1000), 3000);
        assert_eq!(log10_milli(5), 698);
        assert_eq!(log10_milli(50), 1698);
        assert_eq!(log10_milli(500), 2698);
        // Agrees with f64 wherever f64 is not within rounding distance of an integer.
        for n in 1..200_000u64 {
            let f = 1000.0 * (n as f64).log10();
            if (f - f.round()).abs() > 1e-6 {
                assert_eq!(log10_milli(n), f.floor() as u64, "n = {n}");
            }
        }
    }

    #[test]
    fn log_ratio() {
        assert_eq!(log_ratio_fixed(2, 4), ONE / 2);
        assert_eq!(log_ratio_fixed(4, 4), ONE);
        let r = log_ratio_fixed(3, 4) as f64 / ONE as f64;
        assert!((r - 3f64.ln() / 4f64.ln()).abs() < 1e-12);
    }
}
