//! Neurons of a privileged basis: which features each hidden neuron carries.
//!
//! In the ReLU-hidden model (h = ReLU(Wx)) and the |x| model (h = ReLU(W₁x)) the hidden
//! coordinates are neurons, and the paper asks whether each one is monosemantic (one feature)
//! or polysemantic (several). `w` is the encoder in the notebook layout, `[n][m]`: neuron `j`'s
//! incoming weights are the column `w[i * m + j]`, i = 0..n.

/// A neuron is monosemantic when its largest incoming weight carries at least this share of
/// its squared incoming weight (the paper judges "one non-negligible weight" by eye; 90 %
/// is the threshold for the |x| sweep).
pub const MONOSEMANTIC_SHARE: f64 = 0.9;

/// A neuron whose squared incoming weight is below this share of the largest neuron's is
/// unused (dead): it is neither mono- nor polysemantic.
pub const DEAD_SHARE: f64 = 0.01;

/// A feature drives a neuron when its weight on it is positive and at least this fraction of
/// the feature's largest positive weight (a negative weight inhibits, it does not carry).
pub const DRIVE_FRACTION: f64 = 0.5;

/// One neuron's incoming weights, summarised.
#[derive(Clone, Debug, PartialEq)]
pub struct Neuron {
    /// Index of the neuron (hidden coordinate).
    pub index: usize,
    /// Feature with the largest |weight|.
    pub primary: usize,
    /// That feature's share of the squared incoming weight, in [0, 1].
    pub primary_share: f64,
    /// Sum of the squared incoming weights.
    pub weight: f64,
    /// Whether the neuron is used at all (see [`DEAD_SHARE`]).
    pub alive: bool,
}

impl Neuron {
    /// Alive, and one weight carries at least [`MONOSEMANTIC_SHARE`] of it.
    pub fn monosemantic(&self) -> bool {
        self.alive && self.primary_share >= MONOSEMANTIC_SHARE
    }

    /// Alive, and not monosemantic.
    pub fn polysemantic(&self) -> bool {
        self.alive && !self.monosemantic()
    }
}

/// The neurons of an `[n][m]` encoder.
pub fn neurons(w: &[f32], n: usize, m: usize) -> Vec<Neuron> {
    let mut out: Vec<Neuron> = (0..m)
        .map(|j| {
            let (mut total, mut best, mut primary) = (0.0f64, -1.0f64, 0);
            for i in 0..n {
                let sq = (w[i * m + j] as f64).powi(2);
                total += sq;
                if sq > best {
                    (best, primary) = (sq, i);
                }
            }
            Neuron {
                index: j,
                primary,
                primary_share: if total > 0.0 { best / total } else { 0.0 },
                weight: total,
                alive: true,
            }
        })
        .collect();
    let largest = out.iter().map(|n| n.weight).fold(0.0, f64::max);
    for neuron in &mut out {
        neuron.alive = largest > 0.0 && neuron.weight >= DEAD_SHARE * largest;
    }
    out
}

/// Share of the alive neurons that are polysemantic (0 when none is alive).
pub fn polysemantic_share(neurons: &[Neuron]) -> f64 {
    let alive = neurons.iter().filter(|n| n.alive).count();
    let poly = neurons.iter().filter(|n| n.polysemantic()).count();
    if alive == 0 {
        0.0
    } else {
        poly as f64 / alive as f64
    }
}

/// For each feature, the neurons it drives (positive weight ≥ [`DRIVE_FRACTION`] of its
/// largest positive weight), in increasing order; empty for a feature with no positive weight
/// above `floor`.
pub fn driven_neurons(w: &[f32], n: usize, m: usize, floor: f64) -> Vec<Vec<usize>> {
    (0..n)
        .map(|i| {
            let row = &w[i * m..(i + 1) * m];
            let top = row.iter().map(|&v| v as f64).fold(0.0, f64::max);
            if top <= floor {
                return Vec::new();
            }
            (0..m)
                .filter(|&j| row[j] as f64 >= DRIVE_FRACTION * top)
                .collect()
        })
        .collect()
}

/// The order to draw neurons in: by the index of their primary feature (most important
/// first, with features ordered by importance), then by the primary weight's share,
/// largest first; dead neurons last.
pub fn display_order(neurons: &[Neuron]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..neurons.len()).collect();
    order.sort_by(|&a, &b| {
        let (x, y) = (&neurons[a], &neurons[b]);
        y.alive
            .cmp(&x.alive)
            .then(x.primary.cmp(&y.primary))
            .then(y.primary_share.total_cmp(&x.primary_share))
            .then(a.cmp(&b))
    });
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    /// n = 3 features, m = 3 neurons: neuron 0 only feature 0, neuron 1 features 1 and 2
    /// equally, neuron 2 almost nothing.
    fn example() -> Vec<f32> {
        vec![
            1.0, 0.0, 0.0, //
            0.1, 0.7, 0.001, //
            0.0, -0.7, 0.0,
        ]
    }

    #[test]
    fn classifies_mono_poly_and_dead_neurons() {
        let ns = neurons(&example(), 3, 3);
        assert!(ns[0].monosemantic() && ns[0].primary == 0);
        assert!((ns[0].primary_share - 1.0 / 1.01).abs() < 1e-9);
        assert!(ns[1].polysemantic());
        assert!((ns[1].primary_share - 0.5).abs() < 1e-6);
        assert!(!ns[2].alive && !ns[2].monosemantic() && !ns[2].polysemantic());
        assert!((polysemantic_share(&ns) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn driven_neurons_ignore_inhibition_and_small_weights() {
        let d = driven_neurons(&example(), 3, 3, 0.05);
        assert_eq!(d, vec![vec![0], vec![1], vec![]]);
        // A feature spread over two neurons drives both.
        let w = [0.7f32, 0.69, -1.5];
        assert_eq!(driven_neurons(&w, 1, 3, 0.05), vec![vec![0, 1]]);
    }

    #[test]
    fn order_puts_important_primaries_first_and_dead_last() {
        let ns = neurons(&example(), 3, 3);
        // neuron 0 (feature 0), neuron 1 (primary 1 or 2), then the dead neuron 2.
        assert_eq!(display_order(&ns), vec![0, 1, 2]);
        let w = [0.0f32, 1.0, 1.0, 0.0]; // neuron 0 carries feature 1, neuron 1 feature 0
        assert_eq!(display_order(&neurons(&w, 2, 2)), vec![1, 0]);
    }

    #[test]
    fn all_zero_weights_have_no_alive_neuron() {
        let ns = neurons(&[0.0; 6], 3, 2);
        assert!(ns.iter().all(|n| !n.alive));
        assert_eq!(polysemantic_share(&ns), 0.0);
    }
}
