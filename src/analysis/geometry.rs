//! Geometry of feature directions: angles in the plane (m = 2) and a short description of the
//! arrangement (orthogonal pair, antipodal pairs, regular polygon).

use super::metrics::REPRESENTED_NORM;

/// Arrangement of the represented features of a model with two hidden dimensions.
#[derive(Clone, Debug, PartialEq)]
pub struct PlaneGeometry {
    /// Indices of represented features (‖W_i‖ > 0.5), sorted by angle.
    pub features: Vec<usize>,
    /// Their angles in degrees, in [0, 360), ascending.
    pub angles: Vec<f64>,
    /// Angular gaps between neighbours around the circle (degrees; sums to 360).
    pub gaps: Vec<f64>,
    /// Pairs of represented features with cosine below -0.9.
    pub antipodal_pairs: Vec<(usize, usize)>,
}

impl PlaneGeometry {
    /// Analyse `w` (`[n][2]`).
    pub fn of(w: &[f32], n: usize) -> Self {
        let mut feats: Vec<(usize, f64)> = (0..n)
            .filter(|&i| norm(&w[2 * i..2 * i + 2]) > REPRESENTED_NORM)
            .map(|i| {
                let a = (w[2 * i + 1] as f64).atan2(w[2 * i] as f64).to_degrees();
                (i, a.rem_euclid(360.0))
            })
            .collect();
        feats.sort_by(|a, b| a.1.total_cmp(&b.1));
        let angles: Vec<f64> = feats.iter().map(|f| f.1).collect();
        let gaps = (0..angles.len())
            .map(|k| {
                if angles.len() == 1 {
                    360.0
                } else {
                    (angles[(k + 1) % angles.len()] - angles[k]).rem_euclid(360.0)
                }
            })
            .collect();
        let mut antipodal_pairs = Vec::new();
        for (a, &(i, _)) in feats.iter().enumerate() {
            for &(j, _) in &feats[a + 1..] {
                if cosine(&w[2 * i..2 * i + 2], &w[2 * j..2 * j + 2]) < -0.9 {
                    antipodal_pairs.push((i.min(j), i.max(j)));
                }
            }
        }
        PlaneGeometry {
            features: feats.iter().map(|f| f.0).collect(),
            angles,
            gaps,
            antipodal_pairs,
        }
    }

    /// Whether the represented features form a regular polygon (all gaps 360/k ± `tol` degrees).
    pub fn is_regular_polygon(&self, tol: f64) -> bool {
        let k = self.features.len();
        k >= 3
            && self
                .gaps
                .iter()
                .all(|g| (g - 360.0 / k as f64).abs() <= tol)
    }
}

fn norm(v: &[f32]) -> f64 {
    v.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt()
}

/// Cosine of the angle between two vectors (0 if either is zero).
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let d: f64 = a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum();
    let nn = norm(a) * norm(b);
    if nn > 0.0 {
        d / nn
    } else {
        0.0
    }
}

/// A short name for the arrangement of one instance's features, for summaries and figures.
pub fn describe_geometry(w: &[f32], n: usize, m: usize) -> String {
    let represented = (0..n)
        .filter(|&i| norm(&w[i * m..(i + 1) * m]) > REPRESENTED_NORM)
        .count();
    if m != 2 {
        return format!("{represented}/{n} represented");
    }
    let g = PlaneGeometry::of(w, n);
    let k = g.features.len();
    let polygon = |k: usize| match k {
        3 => "triangle".to_string(),
        4 => "square".to_string(),
        5 => "pentagon".to_string(),
        6 => "hexagon".to_string(),
        k => format!("{k}-gon"),
    };
    match k {
        0 => "nothing represented".into(),
        1 => "1 feature".into(),
        2 if g.antipodal_pairs.len() == 1 => "1 antipodal pair".into(),
        2 if g.gaps.iter().all(|x| (x - 180.0).abs() > 60.0) => {
            let c = cosine(
                &w[2 * g.features[0]..2 * g.features[0] + 2],
                &w[2 * g.features[1]..2 * g.features[1] + 2],
            );
            if c.abs() < 0.1 {
                "2 orthogonal".into()
            } else {
                "2 features".into()
            }
        }
        4 if g.antipodal_pairs.len() == 2 => "2 antipodal pairs".into(),
        k if g.is_regular_polygon(10.0) => polygon(k),
        k => {
            let pairs = g.antipodal_pairs.len();
            if pairs > 0 {
                format!("{k} features, {pairs} antipodal pair(s)")
            } else {
                format!("{k} features")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(deg: &[f64], r: f64) -> Vec<f32> {
        deg.iter()
            .flat_map(|d| {
                let a = d.to_radians();
                [(r * a.cos()) as f32, (r * a.sin()) as f32]
            })
            .collect()
    }

    #[test]
    fn recognises_the_intro_geometries() {
        let mut w = at(&[10.0, 100.0], 1.0);
        w.extend([0.0; 6]);
        assert_eq!(describe_geometry(&w, 5, 2), "2 orthogonal");
        let mut w = at(&[0.0, 180.0, 90.0, 270.0], 1.0);
        w.extend([0.01, 0.0]);
        assert_eq!(describe_geometry(&w, 5, 2), "2 antipodal pairs");
        let w = at(&[3.0, 75.0, 147.0, 219.0, 291.0], 1.1);
        assert_eq!(describe_geometry(&w, 5, 2), "pentagon");
        let g = PlaneGeometry::of(&w, 5);
        assert!(g.gaps.iter().all(|x| (x - 72.0).abs() < 1e-4));
        assert_eq!(g.features, vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn irregular_arrangements_are_not_polygons() {
        let w = at(&[0.0, 30.0, 60.0, 90.0, 120.0], 1.0);
        assert!(!PlaneGeometry::of(&w, 5).is_regular_polygon(10.0));
        assert_eq!(describe_geometry(&w, 5, 2), "5 features");
    }
}
