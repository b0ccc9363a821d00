"""Gymnasium envs and PettingZoo ParallelEnvs under the platform's env contract.

``create_env`` may return either; ``adapt`` wraps it so EnvHost sees ``reset(seed)``,
``step({player: action})``, ``render()``, ``get_state()``/``set_state()``. Detection is
duck typing: neither library is imported here, because neither exists in the browser
(the env's own wheels bring them when an experiment needs them).
"""

import copy

from worker.errors import PlayersMismatch


def is_parallel_env(env):
    # PettingZoo's ParallelEnv: a fixed roster, possible_agents. Not ``agents``, the live
    # roster: many envs set it only in reset().
    return hasattr(env, "possible_agents")


def is_gymnasium_env(env):
    # gymnasium.Env and every gymnasium.Wrapper carry spaces as attributes (PettingZoo's
    # are methods, one space per agent) and ``unwrapped``; the platform's own contract has none.
    return (hasattr(env, "observation_space") and hasattr(env, "unwrapped")
            and hasattr(env, "action_space") and not callable(env.action_space))


def adapt(env, players):
    """``env`` as the platform calls it; an env already following the contract is returned as is."""
    if is_parallel_env(env):
        return ParallelEnvAdapter(env, players)
    if is_gymnasium_env(env):
        return GymnasiumAdapter(env, players)
    return env


class _Adapter:
    """Snapshots are the wrapped env's: its own get_state/set_state when it has them, else a
    deep copy of its attributes. deepcopy clones numpy Generators with their state (and a
    wrapper chain layer by layer), so a restored env draws the same numbers again."""

    def __init__(self, env):
        self.env = env

    def render(self):
        return self.env.render()

    def get_state(self):
        own = getattr(self.env, "get_state", None)
        if callable(own):
            return own()
        return copy.deepcopy(vars(self.env))

    def set_state(self, state):
        own = getattr(self.env, "set_state", None)
        if callable(own):
            own(state)
            return
        # EnvHost hands over a copy of the snapshot, never the snapshot itself
        self.env.__dict__.clear()
        self.env.__dict__.update(state)


class GymnasiumAdapter(_Adapter):
    """One player: the human's action goes to ``step`` as is, not in a dict."""

    def __init__(self, env, players):
        if len(players) != 1:
            raise PlayersMismatch(
                "create_env() returned a Gymnasium env, which takes one player's action, but the "
                "experiment has " + str(len(players)) + " players " + repr(list(players))
                + "; return a PettingZoo ParallelEnv for several players")
        super().__init__(env)
        self.player = players[0]

    def reset(self, seed=None):
        return self.env.reset(seed=seed)

    def step(self, actions):
        return self.env.step(actions[self.player])


class ParallelEnvAdapter(_Adapter):
    """Several players: each player is one PettingZoo agent. When the agent names are the
    experiment's player ids they map by name; otherwise in order (players[i] plays
    possible_agents[i]). Results come back keyed by player id."""

    def __init__(self, env, players):
        agents = list(env.possible_agents)
        if len(agents) != len(players):
            raise PlayersMismatch(
                "create_env() returned a PettingZoo env with " + str(len(agents)) + " agents "
                + repr(agents) + " but the experiment has " + str(len(players)) + " players "
                + repr(list(players)) + "; set the experiment's players to one id per agent")
        super().__init__(env)
        if set(agents) == set(players):
            agents = list(players)
        self.player_of = dict(zip(agents, players, strict=True))

    def _by_player(self, per_agent):
        return {self.player_of.get(agent, agent): value for agent, value in per_agent.items()}

    def reset(self, seed=None):
        obs, infos = self.env.reset(seed=seed)
        return self._by_player(obs), self._by_player(infos)

    def step(self, actions):
        # only live agents act: PettingZoo drops an agent from ``agents`` once it is done
        per_agent = {agent: actions[self.player_of[agent]] for agent in self.env.agents}
        obs, rewards, terminated, truncated, infos = self.env.step(per_agent)
        return (self._by_player(obs), self._by_player(rewards), self._by_player(terminated),
                self._by_player(truncated), self._by_player(infos))
