//! Who hears about an alert: sets of recipients, each recipient reached
//! through one channel. The config builds them; alerts only point at them,
//! so planning never learns how a recipient is addressed.

/// One recipient on one channel.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Member {
    /// The channel that reaches it ("mail").
    pub channel: &'static str,
    /// As the channel writes it into an outbox row (`Ops <ops@example.com>`).
    pub address: String,
    /// What makes two members the same person on the channel (a mail
    /// address in lower case): the storm guard counts, and the digest
    /// groups, by it.
    pub key: String,
}

/// The recipients of one alert, in config order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Audience {
    pub members: Vec<Member>,
}

impl Audience {
    /// Who the storm guard counts alerts for: the sorted (channel, key)
    /// pairs, so two folders with the same recipients share a limit.
    pub fn identity(&self) -> Vec<(&'static str, &str)> {
        let mut id: Vec<(&'static str, &str)> = self
            .members
            .iter()
            .map(|m| (m.channel, m.key.as_str()))
            .collect();
        id.sort();
        id
    }

    /// The members of one channel, in order.
    pub fn on<'a>(&'a self, channel: &'a str) -> impl Iterator<Item = &'a Member> + 'a {
        self.members.iter().filter(move |m| m.channel == channel)
    }

    /// The channels its members use, each once, in order of first use.
    pub fn channels(&self) -> Vec<&'static str> {
        let mut out: Vec<&'static str> = Vec::new();
        for m in &self.members {
            if !out.contains(&m.channel) {
                out.push(m.channel);
            }
        }
        out
    }
}

/// An index into [`Audiences::sets`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AudienceId(pub usize);

/// Every audience alerts may address, and which one hears about what.
#[derive(Debug, Clone, Default)]
pub struct Audiences {
    pub sets: Vec<Audience>,
    /// By configured folder index: who hears about its tokens and itself.
    pub folder: Vec<AudienceId>,
    /// Who hears about the host (Apple unreachable).
    pub host: AudienceId,
}

impl Audiences {
    /// Adds `audience` unless an equal one is there; its id either way.
    pub fn add(&mut self, audience: Audience) -> AudienceId {
        match self.sets.iter().position(|a| *a == audience) {
            Some(i) => AudienceId(i),
            None => {
                self.sets.push(audience);
                AudienceId(self.sets.len() - 1)
            }
        }
    }

    /// The audience `id` names; an unknown id has nobody.
    pub fn get(&self, id: AudienceId) -> &Audience {
        static NOBODY: Audience = Audience {
            members: Vec::new(),
        };
        self.sets.get(id.0).unwrap_or(&NOBODY)
    }

    /// Who hears about the folder (and its tokens) with this index; a
    /// folder the config does not know is the host's business.
    pub fn of_folder(&self, folder: usize) -> AudienceId {
        self.folder.get(folder).copied().unwrap_or(self.host)
    }
}
