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
        return describe_structures(&structures(w, n, m), represented, n);
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

/// `W` (`[n][2]`) of features of norm `norm` at the given angles in degrees: hand-made
/// weights for tests and examples.
pub fn plane_weights(degrees: &[f64], norm: f64) -> Vec<f32> {
    degrees
        .iter()
        .flat_map(|d| {
            let a = d.to_radians();
            [(norm * a.cos()) as f32, (norm * a.sin()) as f32]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use plane_weights as at;

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

/// A group of features whose directions interfere with each other (a connected component of
/// the graph with an edge wherever |cos(W_i, W_j)| > the threshold), with its size and span.
#[derive(Clone, Debug, PartialEq)]
pub struct Structure {
    /// Feature indices in the group.
    pub features: Vec<usize>,
    /// Dimension of the subspace they span.
    pub span: usize,
}

impl Structure {
    /// Fractional dimensionality of a uniform polytope with this size and span: d / k.
    pub fn ideal_dimensionality(&self) -> f64 {
        self.span as f64 / self.features.len() as f64
    }

    /// The polytope's usual name, or "k in d dims".
    pub fn name(&self) -> String {
        match (self.features.len(), self.span) {
            (1, 1) => "dedicated".into(),
            (2, 1) => "digon".into(),
            (3, 2) => "triangle".into(),
            (4, 2) => "square".into(),
            (5, 2) => "pentagon".into(),
            (6, 2) => "hexagon".into(),
            (4, 3) => "tetrahedron".into(),
            (6, 3) => "octahedron".into(),
            (8, 3) => "square antiprism".into(),
            (5, 4) => "4-simplex".into(),
            (k, d) => format!("{k} in {d} dims"),
        }
    }
}

/// "3 digons, 1 triangle, 20 dedicated (29/400 represented)": the structures by kind, most
/// common first.
pub fn describe_structures(found: &[Structure], represented: usize, n: usize) -> String {
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    for st in found {
        *counts.entry(st.name()).or_default() += 1;
    }
    let mut kinds: Vec<(String, usize)> = counts.into_iter().collect();
    kinds.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let parts: Vec<String> = kinds
        .iter()
        .take(4)
        .map(|(k, c)| format!("{c} × {k}"))
        .collect();
    let more = if kinds.len() > 4 { ", ..." } else { "" };
    if parts.is_empty() {
        format!("nothing represented (0/{n})")
    } else {
        format!("{}{more} ({represented}/{n} represented)", parts.join(", "))
    }
}

/// |cos| above which two feature directions count as interfering.
pub const INTERFERENCE_COS: f64 = 0.3;

/// Structures among the features with ‖W_i‖ > 0.5 of `w` (`[n][m]`).
pub fn structures(w: &[f32], n: usize, m: usize) -> Vec<Structure> {
    let row = |i: usize| &w[i * m..(i + 1) * m];
    let represented: Vec<usize> = (0..n)
        .filter(|&i| norm(row(i)) > REPRESENTED_NORM)
        .collect();
    // Union-find over represented features.
    let mut parent: Vec<usize> = (0..represented.len()).collect();
    fn root(parent: &mut [usize], mut a: usize) -> usize {
        while parent[a] != a {
            parent[a] = parent[parent[a]];
            a = parent[a];
        }
        a
    }
    for a in 0..represented.len() {
        for b in a + 1..represented.len() {
            if cosine(row(represented[a]), row(represented[b])).abs() > INTERFERENCE_COS {
                let (ra, rb) = (root(&mut parent, a), root(&mut parent, b));
                parent[ra] = rb;
            }
        }
    }
    let mut groups: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
    for (a, &feature) in represented.iter().enumerate() {
        let r = root(&mut parent, a);
        groups.entry(r).or_default().push(feature);
    }
    let mut out: Vec<Structure> = groups
        .into_values()
        .map(|features| {
            let span = span(features.iter().map(|&i| row(i)), m);
            Structure { features, span }
        })
        .collect();
    out.sort_by_key(|s| s.features[0]);
    out
}

/// Numerical rank of a set of vectors (Gram–Schmidt; a vector adds a dimension when more than
/// 20% of its length lies outside the span of the earlier ones).
fn span<'a>(vectors: impl Iterator<Item = &'a [f32]>, m: usize) -> usize {
    let mut basis: Vec<Vec<f64>> = Vec::new();
    for v in vectors {
        let mut r: Vec<f64> = v.iter().map(|&x| x as f64).collect();
        let len = r.iter().map(|x| x * x).sum::<f64>().sqrt();
        for b in &basis {
            let d: f64 = r.iter().zip(b).map(|(x, y)| x * y).sum();
            for (x, y) in r.iter_mut().zip(b) {
                *x -= d * y;
            }
        }
        let rest = r.iter().map(|x| x * x).sum::<f64>().sqrt();
        if len > 0.0 && rest > 0.2 * len && basis.len() < m {
            basis.push(r.iter().map(|x| x / rest).collect());
        }
    }
    basis.len()
}

#[cfg(test)]
mod structure_tests {
    use super::*;

    /// A digon in dims (0), a triangle in dims (1, 2), a tetrahedron in dims (3, 4, 5), and
    /// one dedicated feature in dim 6, in m = 7.
    #[test]
    fn finds_and_names_tegum_factors() {
        let m = 7;
        let mut w: Vec<f32> = Vec::new();
        let mut push = |pairs: &[(usize, f32)]| {
            let mut r = vec![0.0f32; m];
            for &(k, v) in pairs {
                r[k] = v;
            }
            w.extend(r);
        };
        push(&[(0, 1.0)]);
        push(&[(0, -1.0)]);
        for t in 0..3 {
            let a = 2.0 * std::f32::consts::PI * t as f32 / 3.0;
            push(&[(1, a.cos()), (2, a.sin())]);
        }
        let s = 1.0 / 3f32.sqrt();
        for signs in [
            [1.0, 1.0, 1.0],
            [1.0, -1.0, -1.0],
            [-1.0, 1.0, -1.0],
            [-1.0, -1.0, 1.0],
        ] {
            push(&[(3, s * signs[0]), (4, s * signs[1]), (5, s * signs[2])]);
        }
        push(&[(6, 1.0)]);
        push(&[(6, 0.01)]); // not represented
        let n = w.len() / m;
        let found = structures(&w, n, m);
        let names: Vec<String> = found.iter().map(|s| s.name()).collect();
        assert_eq!(names, ["digon", "triangle", "tetrahedron", "dedicated"]);
        assert_eq!(found[2].ideal_dimensionality(), 0.75);
        let dims = crate::analysis::FeatureMetrics::compute(&w, n, m).fractional_dimensionality;
        for st in &found {
            for &i in &st.features {
                assert!((dims[i] - st.ideal_dimensionality()).abs() < 1e-3);
            }
        }
    }
}
