"""Task layers: the new head put on top of a source model's features.

A head factory is any callable ``factory(in_features, task, **options) ->
torch.nn.Module``. The module maps features ``[batch, in_features]`` to
``[batch, task.num_outputs]`` (logits for classification, values for
regression). The core registers ``linear`` and ``mlp``; plugins add more with
the ``register_heads`` hook.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from tlzoo.errors import ConfigurationError, did_you_mean
from tlzoo.tasks import TaskSpec

if TYPE_CHECKING:
    from torch import nn

@runtime_checkable
class HeadFactory(Protocol):
    """Builds a head: ``factory(in_features, task, **options) -> nn.Module``."""

    def __call__(self, in_features: int, task: TaskSpec, **options: Any) -> nn.Module: ...


class LinearHeadFactory:
    """One linear layer (optionally after dropout): the classic linear probe head."""

    def __call__(self, in_features: int, task: TaskSpec, *, dropout: float = 0.0) -> nn.Module:
        from torch import nn

        linear = nn.Linear(in_features, task.num_outputs)
        if dropout:
            return nn.Sequential(nn.Dropout(dropout), linear)
        return linear


class MLPHeadFactory:
    """Two linear layers with a GELU and dropout between them."""

    def __call__(
        self, in_features: int, task: TaskSpec, *, hidden_size: int = 256, dropout: float = 0.1
    ) -> nn.Module:
        from torch import nn

        return nn.Sequential(
            nn.Linear(in_features, hidden_size),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden_size, task.num_outputs),
        )


def parse_head(head: str | dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Split ``"mlp"`` or ``{"name": "mlp", "hidden_size": 64}`` into name and options."""
    if isinstance(head, str):
        return head, {}
    if isinstance(head, dict) and isinstance(head.get("name"), str):
        options = dict(head)
        return options.pop("name"), options
    raise ConfigurationError(f"head must be a name like 'linear' or a dict with a 'name' key, got {head!r}.")


def get_head_factory(name: str) -> HeadFactory:
    """The registered head factory called *name* (close matches in the error)."""
    from tlzoo.plugins import head_factories

    factories = head_factories()
    if name not in factories:
        raise ConfigurationError(
            f"Unknown head {name!r}; registered heads: {', '.join(sorted(factories))}." + did_you_mean(name, factories)
        )
    return factories[name]


def build_head(head: str | dict[str, Any], in_features: int, task: TaskSpec) -> nn.Module:
    """Build the head described by *head* for *task* on *in_features* inputs."""
    name, options = parse_head(head)
    factory = get_head_factory(name)
    check_head_options(name, factory, options)
    try:
        return factory(in_features, task, **options)
    except TypeError as exc:
        raise ConfigurationError(f"Head {name!r} does not accept options {options}: {exc}") from exc


def head_option_names(factory: Any) -> list[str] | None:
    """The keyword options a head factory takes (``None``: it takes any, through ``**options``)."""
    import inspect

    try:
        params = list(inspect.signature(factory).parameters.values())[2:]  # after in_features, task
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return [p.name for p in params if p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)]


def check_head_options(name: str, factory: Any, options: dict[str, Any]) -> None:
    """Refuse options the head factory does not take, naming the ones it does (and close matches)."""
    accepted = head_option_names(factory)
    if accepted is None:
        return
    unknown = [key for key in options if key not in accepted]
    if unknown:
        hints = "".join(did_you_mean(key, accepted, n=1) for key in unknown)
        raise ConfigurationError(
            f"Head {name!r} has no option{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
            f"its options are: {', '.join(accepted) or 'none'}.{hints}")


def linear_layer(head: Any) -> Any:
    """The head's only ``nn.Linear`` if the head is linear (dropout/identity allowed), else ``None``.

    A linear head can be fitted in closed form or by L-BFGS (the probe) and folded
    into a transformers classifier (the ``pipeline()`` export).
    """
    from torch import nn

    if isinstance(head, nn.Linear):
        return head
    if isinstance(head, nn.Sequential):
        layers = list(head)
        rest = [m for m in layers if not isinstance(m, nn.Dropout | nn.Identity)]
        if len(rest) == 1 and isinstance(rest[0], nn.Linear) and layers[-1] is rest[0]:
            return rest[0]
    return None
