//! The queues this process works on: their weights, their Redis keys, the private
//! in-progress list of each, and which queue a fetch tries first.

use mail_protocol::keys as mailkeys;
use rand::Rng;
use sidekiq_wire::keys;
use sidekiq_wire::process::QueueMode;

/// One queue of this process.
#[derive(Debug, Clone)]
pub struct Queue {
    /// The queue name (`default`).
    pub name: String,
    /// Its weight (`high,2` ⇒ 2).
    pub weight: u32,
    /// `queue:<name>`.
    pub key: String,
    /// This process's in-progress list for it.
    pub inprogress: String,
}

/// The queues of one process, in configured order.
#[derive(Debug, Clone)]
pub struct QueueSet {
    queues: Vec<Queue>,
    mode: QueueMode,
}

impl QueueSet {
    /// The queues `(name, weight)` of process `identity`.
    pub fn new(identity: &str, queues: &[(String, u32)], mode: QueueMode) -> Self {
        QueueSet {
            queues: queues
                .iter()
                .map(|(name, weight)| Queue {
                    name: name.clone(),
                    weight: *weight,
                    key: keys::queue(name),
                    inprogress: mailkeys::inprogress(identity, name),
                })
                .collect(),
            mode,
        }
    }

    /// The queues in configured order.
    pub fn all(&self) -> &[Queue] {
        &self.queues
    }

    /// The queue at `index`, if any.
    pub fn get(&self, index: usize) -> Option<&Queue> {
        self.queues.get(index)
    }

    /// Which queue a fetch slot tries first: a weighted random pick (a queue of weight 2 is
    /// first twice as often, as Sidekiq's weighted mode), or the first one in strict mode.
    pub fn pick(&self, rng: &mut impl Rng) -> usize {
        match self.mode {
            QueueMode::Strict => 0,
            QueueMode::Weighted => {
                let total: u32 = self.queues.iter().map(|q| q.weight).sum();
                let mut x = rng.random_range(0..total.max(1));
                for (i, q) in self.queues.iter().enumerate() {
                    if x < q.weight {
                        return i;
                    }
                    x -= q.weight;
                }
                0
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_pick_follows_the_weights_and_strict_takes_the_first() {
        let queues = vec![("high".to_string(), 2), ("default".to_string(), 1)];
        let set = QueueSet::new("h:1:ab", &queues, QueueMode::Weighted);
        let mut rng = rand::rng();
        let high = (0..30_000).filter(|_| set.pick(&mut rng) == 0).count();
        assert!((18_000..22_000).contains(&high), "{high}");
        let strict = QueueSet::new("h:1:ab", &queues, QueueMode::Strict);
        assert!((0..100).all(|_| strict.pick(&mut rng) == 0));
        assert_eq!(
            set.all()[1].inprogress,
            "mailworker:inprogress:h:1:ab:default"
        );
    }
}
