"""Lifecycle in one place: open everything a quotabot process needs, in order, and close it."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from bot.access import Access
from bot.admission import Admission
from bot.alerts import Alerts
from bot.budget.backend import BudgetBackend
from bot.budget.limits import Cap, usd_units
from bot.budget.manager import Budget
from bot.budget.memory import MemoryBackend
from bot.budget.policy import Policy
from bot.catalog import Catalog
from bot.chat.commands import Commands
from bot.chat.digest import DigestCommands
from bot.config import ProviderSpec, Settings
from bot.dashboard.links import links_for
from bot.digest.content import DigestBuilder
from bot.digest.costs import OrganizationCosts, provider_cost
from bot.digest.send import Digests
from bot.metrics import Metrics
from bot.models import ChannelSettings
from bot.provider import AzureWire, Health, OpenAIClient, OpenAIWire, Providers, Wire
from bot.retry import RetryPolicy
from bot.sandbox import SandboxConfig, SandboxServer
from bot.service import Service
from bot.store import ChannelStore, Database, UsageStore, migrate
from bot.store.budgets import BudgetLimitStore
from bot.store.digests import Claims, DigestSettingsStore, ReportSettingsStore, RequestEvents
from bot.store.events import EventLog
from bot.store.feedback import Feedback
from bot.store.grants import BudgetRequests
from bot.store.journal import Journal
from bot.store.spool import Spool
from bot.takeover import CLAIM_WAIT

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class App:
    settings: Settings
    catalog: Catalog
    db: Database
    usage: UsageStore
    channels: ChannelStore
    providers: Providers
    """Each provider's client (the default one: OPENAI_BASE_URL, or the sandbox), and which
    serves each model."""
    service: Service
    budget: Budget
    limits: BudgetLimitStore
    requests: BudgetRequests
    """Requests for more budget from chat, and the admins' grants."""
    feedback: Feedback
    """👍 and 👎 on answers."""
    metrics: Metrics
    sandbox: SandboxServer | None
    """The built-in sandbox, when no provider is configured; None otherwise."""
    digests: Digests
    """Daily digests; the adapters that can post add themselves to ``digests.posters``."""
    digest_commands: DigestCommands
    events: EventLog
    """Chat events taken on (answer once), with the leases that let a process take over."""
    costs: OrganizationCosts | None = None
    """The provider's own reported cost (with OPENAI_ADMIN_KEY): digests and the dashboard."""

    def commands(self) -> Commands:
        """What ``/usage``, ``/budget`` and ``/digest`` do, for the chat adapters."""
        return Commands(
            usage=self.usage,
            budget=self.budget,
            limits=self.limits,
            digests=self.digest_commands,
            transcription=self.catalog.get(self.settings.voice.transcription_model),
            catalog=self.catalog,
            requests=self.requests,
            feedback=self.feedback,
            dashboard=links_for(self.settings),
        )

    @property
    def provider_url(self) -> str:
        """Where the default provider is."""
        return self.sandbox.base_url if self.sandbox else self.settings.provider.base_url

    def describe_providers(self) -> str:
        """For start-up lines: the default provider's address, and the others' names."""
        others = [name for name in self.providers if name != self.providers.default]
        more = f"; also {', '.join(others)}" if others else ""
        return f"{self.provider_url}{more}"


def provider_client(spec: ProviderSpec, settings: Settings) -> OpenAIClient:
    """The client of one provider, speaking its kind's wire format."""
    options = settings.provider
    wire: Wire = OpenAIWire()
    if spec.kind == "azure":
        assert spec.api_version is not None  # the settings refuse an Azure table without one
        wire = AzureWire(api_version=spec.api_version, deployments=spec.deployments)
    return OpenAIClient(
        base_url=spec.base_url,
        api_key=spec.api_key.get_secret_value() if spec.api_key else None,
        timeout=options.timeout,
        max_connections=options.connections,
        wire=wire,
        headers=spec.headers,
        health=Health(spec.name, after=options.down_after, down_for=options.down_for),
        key_name=spec.key_name,
    )


def budget_backend(settings: Settings) -> BudgetBackend:
    """Redis when configured, so that every quotabot process shares one budget."""
    if settings.budget.redis_url:
        from bot.budget.redis import RedisBackend

        return RedisBackend(settings.budget.redis_url, prefix=settings.budget.redis_prefix)
    return MemoryBackend()


def cap_seed(usage: UsageStore) -> Callable[[Cap, datetime], Awaitable[int]]:
    async def seed(cap: Cap, since: datetime) -> int:
        total = await usage.total(unit=cap.unit, where=cap.where, since=since)
        return usd_units(Decimal(total)) if cap.unit == "usd" else int(total)

    return seed


def channel_defaults(settings: Settings) -> ChannelSettings:
    defaults = settings.defaults
    return ChannelSettings(
        model=defaults.model,
        system_prompt=defaults.system_prompt,
        max_tokens=defaults.max_tokens,
        temperature=defaults.temperature,
        enabled=True,
    )


@asynccontextmanager
async def open_app(
    settings: Settings, *, auto_migrate: bool | None = None, provider_keys: bool = True
) -> AsyncIterator[App]:
    """Open the store (migrating it; by default only SQLite is migrated automatically), a
    client per provider, or the built-in sandbox when no provider is configured.

    A provider's key that is not set stops it with a ConfigError before anything opens,
    unless ``provider_keys`` is False: commands that call no model (usage, budget) run
    without the keys."""
    provider_settings, store, budget_settings = settings.provider, settings.store, settings.budget
    catalog = provider_settings.catalog()
    # Before anything opens: a provider's key that is not set stops the start here.
    specs = provider_settings.specs(keys=provider_keys)
    async with AsyncExitStack() as stack:
        db = Database(store.sqlalchemy_url)
        stack.push_async_callback(db.aclose)
        await migrate.ensure_schema(db, migrate=auto_migrate)

        sandbox = None
        if not provider_settings.configured:
            sandbox = await stack.enter_async_context(SandboxServer(SandboxConfig(catalog=catalog)))
            specs = provider_settings.specs(default_url=sandbox.base_url, keys=provider_keys)
        providers = Providers(
            {name: provider_client(spec, settings) for name, spec in specs.items()},
            routes=provider_settings.routes(),
        )
        stack.push_async_callback(providers.aclose)

        backend = budget_backend(settings)
        await backend.start()
        stack.push_async_callback(backend.aclose)
        limits = BudgetLimitStore(db)
        # Rows the database cannot take wait here (fsynced) and are written when it is back.
        usage = UsageStore(
            db,
            spool=Spool(store.data_dir / "usage-spool.jsonl"),
            # Rows the database refuses for their data: set aside, never retried.
            quarantine=Spool(store.data_dir / "usage-quarantine.jsonl"),
        )
        usage.start()
        stack.push_async_callback(usage.aclose)
        requests = BudgetRequests(db)
        budget = Budget(
            backend,
            Policy(budget_settings.limit_values()),
            queue_size=budget_settings.queue_size,
            batch_max=budget_settings.batch_max,
            spread=budget_settings.burst_spread,
            overrides=limits.all,
            grants=requests.in_force,
            # Counters in this process start from zero: daily and monthly caps start from what
            # the usage store says was already used. (Redis keeps its counters.)
            seed=cap_seed(usage) if isinstance(backend, MemoryBackend) else None,
        )
        stack.push_async_callback(budget.aclose)

        channels = ChannelStore(db, channel_defaults(settings))
        journal = Journal(store.data_dir / "inbox")
        stack.callback(journal.close)
        metrics = Metrics()
        metrics.watch(
            "quotabot_queue_depth", "Requests waiting for budget, by model.", budget.queue_depths
        )
        metrics.watch(
            "quotabot_provider_up",
            "1 while the provider answers, 0 while it is marked down after failed calls.",
            lambda: ((name, float(up)) for name, up in providers.states().items()),
            label="provider",
        )
        metrics.budget_fallback.set_function(lambda: float(backend.degraded))
        metrics.usage_quarantined.set_function(lambda: float(usage.quarantined))
        admission = Admission(settings.events.concurrent_answers or provider_settings.connections)
        metrics.events_waiting.set_function(lambda: float(admission.waiting))
        builder = DigestBuilder(db, budget)
        digests = Digests(
            builder=builder,
            settings=DigestSettingsStore(db),
            claims=Claims(db),
            reports=ReportSettingsStore(db),
        )
        costs = None
        if provider_settings.admin_key is not None:
            costs = OrganizationCosts(
                base_url=sandbox.base_url if sandbox else provider_settings.base_url,
                admin_key=provider_settings.admin_key.get_secret_value(),
            )
            stack.push_async_callback(costs.aclose)
            digests.provider_cost = provider_cost(costs, builder)
        service = Service(
            provider=providers,
            catalog=catalog,
            usage=usage,
            channels=channels,
            budget=budget,
            retry=RetryPolicy(
                max_attempts=provider_settings.max_attempts,
                base=provider_settings.retry_base,
                cap=provider_settings.retry_max,
            ),
            alerts=Alerts(claim=backend.claim),
            deadline=budget_settings.request_deadline,
            batching=budget_settings.batching,
            store_message_text=store.message_text,
            metrics=metrics,
            access=Access(
                settings.access.allowed_workspaces,
                settings.access.allowed_channels,
                settings.access.denied_channels,
            ),
            events=RequestEvents(db),
            admission=admission,
            transcription_model=settings.voice.transcription_model,
        )
        yield App(
            settings=settings,
            catalog=catalog,
            db=db,
            usage=usage,
            channels=channels,
            providers=providers,
            service=service,
            budget=budget,
            limits=limits,
            requests=requests,
            feedback=Feedback(db),
            metrics=metrics,
            sandbox=sandbox,
            digests=digests,
            digest_commands=DigestCommands(digests),
            events=EventLog(
                db,
                lease=settings.events.lease,
                ack_wait=CLAIM_WAIT if settings.events.ack_after_claim else 0.0,
                journal=journal,
            ),
            costs=costs,
        )
