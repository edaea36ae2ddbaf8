"""A tiny in-memory inventory: items, stock levels and reorder hints."""
from dataclasses import dataclass, field


@dataclass
class Item:
    sku: str
    name: str
    price: float
    quantity: int = 0
    tags: list[str] = field(default_factory=list)


class Inventory:
    def __init__(self):
        self.items: dict[str, Item] = {}

    def add(self, item: Item) -> None:
        if item.sku in self.items:
            raise ValueError(f"duplicate sku: {item.sku}")
        self.items[item.sku] = item

    def restock(self, sku: str, amount: int) -> int:
        item = self.items[sku]
        item.quantity += amount
        return item.quantity

    def total_value(self) -> float:
        return sum(item.price * item.quantity for item in self.items.values())

    def low_stock(self, threshold: int = 5) -> list[Item]:
        return [item for item in self.items.values() if item.quantity < threshold]
