"""Writes pairs.jsonl: 118 questions, each with a one-sentence answer (chosen) and the same
answer wrapped in chat filler (rejected). DPO on these pairs teaches the embedded model to drop
the filler. Deterministic: run it again and the file is byte-identical.

    python examples/preference/make_pairs.py
"""

from __future__ import annotations

import json
import random
from pathlib import Path

FACTS = """\
a glacier|A glacier is a slow river of ice that forms where snow piles up faster than it melts.
a volcano|A volcano is an opening in the crust where molten rock, ash and gas escape.
photosynthesis|Photosynthesis is how plants turn light, water and carbon dioxide into sugar.
a comet|A comet is a ball of ice and dust that grows a glowing tail near the Sun.
an atom|An atom is the smallest unit of a chemical element, a nucleus with electrons around it.
a rainbow|A rainbow is sunlight split into colours by raindrops acting as tiny prisms.
gravity|Gravity is the pull that masses exert on each other.
a compass|A compass is a magnetised needle that turns to point toward magnetic north.
an echo|An echo is a sound reflected back to you from a distant surface.
a tide|A tide is the regular rise and fall of the sea caused by the Moon's pull.
a fossil|A fossil is the preserved trace of a living thing from long ago, usually in rock.
a lighthouse|A lighthouse is a tower with a bright lamp that guides ships near the coast.
a thermometer|A thermometer is an instrument that measures temperature.
a bridge|A bridge is a structure that carries a road or path over an obstacle.
a desert|A desert is a region that receives very little rain.
an island|An island is a piece of land surrounded by water.
a calendar|A calendar is a system for dividing time into days, weeks, months and years.
a library|A library is a collection of books and other media that people can borrow.
a vaccine|A vaccine trains the immune system to recognise a germ before it causes disease.
a battery|A battery stores chemical energy and releases it as electricity.
a magnet|A magnet is an object that attracts iron and has a north and a south pole.
an orchestra|An orchestra is a large group of musicians playing strings, winds and drums together.
a haiku|A haiku is a short Japanese poem of three lines with five, seven and five syllables.
democracy|Democracy is government in which the people choose their leaders by voting.
inflation|Inflation is the general rise of prices over time.
a recipe|A recipe is a set of instructions for preparing a dish.
a marathon|A marathon is a running race of about 42 kilometres.
a telescope|A telescope is an instrument that makes distant objects look closer.
a microscope|A microscope is an instrument that magnifies very small things.
an eclipse|An eclipse happens when one body in space blocks the light reaching another.
a hurricane|A hurricane is a large rotating storm with strong winds that forms over warm seas.
an earthquake|An earthquake is a sudden shaking of the ground caused by moving rock.
a coral reef|A coral reef is an underwater structure built by colonies of tiny animals.
a seed|A seed is the part of a plant that can grow into a new plant.
a cloud|A cloud is a mass of tiny water droplets or ice crystals floating in the air.
a river delta|A river delta is land formed where a river drops its sediment as it meets the sea.
a password|A password is a secret string that proves who you are to a computer.
a spreadsheet|A spreadsheet is a grid of cells for organising and calculating numbers.
an algorithm|An algorithm is a step-by-step procedure for solving a problem.
a database|A database is an organised store of data that programs can query.
a web browser|A web browser is a program for viewing pages on the web.
email|Email is a way of sending written messages between computers.
a satellite|A satellite is an object that orbits a planet.
a kilogram|A kilogram is the basic unit of mass in the metric system.
a prime number|A prime number is a whole number above one divisible only by one and itself.
a triangle|A triangle is a flat shape with three straight sides.
a fraction|A fraction is a number that represents part of a whole.
an equation|An equation is a statement that two expressions are equal.
a hypothesis|A hypothesis is a testable guess that explains an observation.
an experiment|An experiment is a test carried out to check a hypothesis.
a museum|A museum is a building that keeps and displays objects of interest.
a passport|A passport is an official document that lets you travel between countries.
a currency|A currency is the money a country uses.
a tax|A tax is money that people and businesses must pay to the government.
a contract|A contract is an agreement that the law will enforce.
a mortgage|A mortgage is a loan used to buy property, secured by that property.
a budget|A budget is a plan for how to spend and save money.
a vitamin|A vitamin is a nutrient the body needs in small amounts to stay healthy.
a muscle|A muscle is tissue that contracts to move parts of the body.
the heart|The heart is the organ that pumps blood around the body.
the lungs|The lungs are the organs that take oxygen into the body.
a bone|A bone is a hard tissue that forms the skeleton.
sleep|Sleep is a regular state of rest in which the body and brain recover.
a dream|A dream is a series of images and feelings the mind creates during sleep.
a habit|A habit is a behaviour repeated so often that it becomes automatic.
a language|A language is a system of words and rules that people use to communicate.
a dialect|A dialect is a regional or social variety of a language.
a novel|A novel is a long fictional story written in prose.
a biography|A biography is the story of a person's life written by someone else.
a map|A map is a drawing of an area that shows where things are.
a border|A border is the line that separates two countries or regions.
a capital city|A capital city is the city where a country's government sits.
a harbour|A harbour is a sheltered stretch of water where ships can stay safely.
a canal|A canal is a waterway built by people for boats or irrigation.
a tunnel|A tunnel is an underground passage.
a skyscraper|A skyscraper is a very tall building with many floors.
an elevator|An elevator is a platform that carries people between floors.
a bicycle|A bicycle is a vehicle with two wheels powered by pedals.
a train|A train is a line of connected carriages that runs on rails.
an airplane|An airplane is a powered aircraft with fixed wings.
a helicopter|A helicopter is an aircraft lifted by spinning rotor blades.
a submarine|A submarine is a ship that can travel under water.
a rocket|A rocket is a vehicle pushed forward by the gas it expels.
a robot|A robot is a machine that can carry out tasks automatically.
a sensor|A sensor is a device that detects a physical quantity and reports it.
a thermostat|A thermostat switches heating or cooling on and off to hold a set temperature.
a solar panel|A solar panel turns sunlight into electricity.
a wind turbine|A wind turbine turns the energy of moving air into electricity.
a dam|A dam is a barrier that holds back water.
recycling|Recycling is turning used materials into new products.
compost|Compost is decayed plant matter used to enrich soil.
a forest|A forest is a large area covered mostly with trees.
a wetland|A wetland is land that is soaked with water for much of the year.
a species|A species is a group of living things that can breed with each other.
evolution|Evolution is the change in living things over many generations.
a food chain|A food chain shows which living things eat which others.
a mammal|A mammal is a warm-blooded animal that feeds its young with milk.
a reptile|A reptile is a cold-blooded animal with scales, such as a lizard or snake.
an insect|An insect is a small animal with six legs and three body parts.
a bee|A bee is a flying insect that collects nectar and pollinates flowers.
an owl|An owl is a bird of prey that mostly hunts at night.
a whale|A whale is a very large mammal that lives in the sea.
a mushroom|A mushroom is the fruiting body of a fungus.
bread|Bread is a food made by baking a dough of flour and water.
cheese|Cheese is a food made from curdled milk.
tea|Tea is a drink made by soaking dried leaves in hot water.
coffee|Coffee is a drink brewed from roasted coffee beans.
chocolate|Chocolate is a food made from roasted cacao seeds.
a spice|A spice is a dried seed, bark or root used to flavour food.
a violin|A violin is a four-stringed instrument played with a bow.
a piano|A piano is an instrument whose keys make hammers strike strings.
a drum|A drum is an instrument played by striking a stretched skin.
a sculpture|A sculpture is a three-dimensional work of art.
a photograph|A photograph is an image recorded by a camera.
a film|A film is a story told with moving pictures.
chess|Chess is a board game in which two players try to trap each other's king.
a puzzle|A puzzle is a problem or game that tests ingenuity.
a password manager|A password manager is a program that stores your passwords securely.
"""

QUESTIONS = ["What is {x}?", "Explain {x}.", "Tell me about {x}.", "Describe {x}."]
OPENERS = [
    "Great question! I'd be happy to help you understand {x}.",
    "Sure! That's a really interesting topic, and there's a lot to say about {x}.",
    "Of course! Let me walk you through {x} step by step.",
    "Absolutely, happy to explain! {X} comes up a lot, so it's a great thing to ask about.",
]
MIDDLES = [
    "Before we dive in, it's worth saying that this is something many people wonder about.",
    "There are many ways to look at it, and different sources explain it differently.",
    "It can seem a bit confusing at first, but it's actually quite simple once you see it.",
]
CLOSERS = [
    "I hope this helps! Let me know if you have any other questions.",
    "Feel free to ask if you'd like more details on any part of this!",
    "I hope that makes things clearer. Is there anything else you'd like to know?",
]


def pairs(seed: int = 0) -> list[dict[str, str]]:
    rng = random.Random(seed)
    found = []
    for line in FACTS.strip().splitlines():
        topic, answer = line.split("|")
        opener = rng.choice(OPENERS).format(x=topic, X=topic[0].upper() + topic[1:])
        rejected = " ".join([opener, rng.choice(MIDDLES), "In short:", answer, rng.choice(CLOSERS)])
        found.append(
            {
                "prompt": rng.choice(QUESTIONS).format(x=topic),
                "chosen": answer,
                "rejected": rejected,
            }
        )
    return found


def main() -> None:
    target = Path(__file__).with_name("pairs.jsonl")
    target.write_text("".join(json.dumps(p) + "\n" for p in pairs()), encoding="utf-8")
    print(f"{target}: {len(pairs())} pairs")


if __name__ == "__main__":
    main()
