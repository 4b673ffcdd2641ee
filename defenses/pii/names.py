"""Common given names, family names and honorifics: what confirms that a column under an
ambiguous header (``name``, ``customer``, ``owner``) holds people, not products.

A header such as ``full_name`` or ``surname`` says a column holds people's names; ``name``
alone does not (a product, a car model, a Pokémon), nor do ``customer`` or ``owner`` (a
company, a team). Under such a header the scan counts the name-shaped cells as pending, and
the column confirms them when at least :data:`CONFIRM_SHARE` of those cells hold a word from
these lists: a column of people's names always does (the lists cover the commonest names
of many countries, and an honorific counts too), a column of product names almost never.

The lists are data, lower case, ASCII and accented spellings both; a name missing from them
only matters for a column whose names are nearly all missing from them.
"""

from __future__ import annotations

CONFIRM_SHARE = 0.2
"""The share of a column's name-shaped cells that must hold a known name (at least one cell)."""

HONORIFICS = frozenset({
    "mr", "mrs", "ms", "miss", "mx", "dr", "prof", "sir", "dame", "madam", "herr", "frau", "monsieur",
    "madame", "mademoiselle", "mme", "mlle", "senor", "señor", "senora", "señora", "sr", "sra", "signor",
    "signora",
})

GIVEN_NAMES = frozenset("""
aaron abdul abdullah abel abigail abraham ada adam adaeze adebayo adele adrian adriana agnes ahmad
ahmed aiden aiko aisha akira alan albert alberto alejandro aleksandr alex alexa alexander alexandra
alexis alfred alfredo ali alice alicia alina alison amanda amara amelia amir amit amy ana anastasia
anders andrea andreas andrei andrew andrzej angela angelo anita ann anna anne annie anthony antoine
antonio anya arjun arthur arturo asha ashley astrid ava barbara beatriz ben benjamin bernard beth
betty bianca bob bogdan brandon brenda brian bruce bruno caleb camila carl carla carlos carmen
carol caroline carolyn catherine cecilia charles charlie charlotte chen chiara chidi chinedu chloe
chris christian christina christine christopher claire clara claudia colin connor cristina cynthia
daniel daniela danielle daria david deborah deepak denis dennis diana diego dimitri dmitri dmitry
dominic donald donna dorothy dylan edward eleanor elena eli elif elijah elisa elizabeth ella ellen
emeka emil emily emma emmanuel eric erik erin ernesto esther ethan eva evelyn fabio farah fatima
fatma federico felipe felix fernando filip fiona francesca francesco francis francisco franz
frederick gabriel gabriela gary george gerald giovanni giulia giuseppe greta gregory guillermo
gustavo hana hannah hans harold harry hassan heather heidi helen helena henry hiroshi hugo hussein
ian ibrahim ida igor ilya ines ingrid irene isaac isabel isabella ivan jacob jacqueline jakub james
jan jane janet jason javier jean jeffrey jennifer jeremy jerry jesse jessica jesus jin joan joao
joão john johan johanna jonas jonathan jorge jose josé joseph joshua juan judith julia julian julie
justin kai kamal karen karim karl kate katherine kathleen kathryn katie kayla keith kelly kenji
kenneth kevin kim kimberly klaus kofi krishna kumar kurt kyle lara lars laura lauren lawrence leah
lei lena leon leonardo li liam linda lisa liu lorenzo louis louise lucas lucia lucy luis luisa luka
lukas luke madison magdalena mamadou manuel marc marcel marco marcus margaret maria mariam marie
marina mario marta martha martin mary mateo matteo matthew maxim megan mehmet melissa mia michael
michel michelle miguel mikhail mila mohamed mohammad mohammed monica muhammad musa mustafa nadia
naledi nancy naomi natalia natalie nathan neil nicholas nicola nicole nikita nikolai nina noah nora
nuno olga oliver olivia omar oscar owen pablo pamela paolo patricia patrick paul paula pedro peter
philip pierre pietro piotr priya rachel rafael rahul raj rajesh ralph ramon raquel raul rebecca
richard rita robert roberto robin roger roman ronald rosa russell ruth ryan sabrina sadia samantha
samir samuel sandra santiago sara sarah sean sebastian sergei sergey sergio seung shanice sharon
shirley simon simone sofia sophia sophie stefan stefano stephanie stephen steven susan svetlana
takashi tamara tanya teresa theodore theresa thomas tiffany timothy tomas tomás tyler valentina
valeria vanessa vera veronica victor vikram vincent virginia walter wang wayne wei william xavier
xin yan yang yasmin yiannis yu yuki yusuf yuri zainab zanele zhang zoe zoë
""".split())

SURNAMES = frozenset("""
abbott adams adeyemi ahmed ali allen alvarez anderson andersson andrews bailey bakker banerjee
barnes becker bennett bernard bianchi bruno campbell carter castillo chan chang chaudhry chen cho
choi clark cohen collins cooper cruz davies davis demir diaz dijk dubois durand edwards eriksson
esposito evans ferrari fernandez fischer flores fraser garcia garcía gomez gonzalez gonzález gupta
hall hansen harris hassan hernandez hoffmann hughes hussain ibrahim ivanov ivanova jackson jansen
janssen jensen johansson johnson jones jung kang karlsson kaya kelly khan kim klein koch kowalski
kozlov kumar kuznetsov larsen laurent lee lefebvre lewis li lin liu lopez lópez martin martinez
martínez mehta mendoza meyer miller mohamed moore morales moreau morgan mueller murphy müller
nakamura nguyen nielsen nilsson novak nowak o'brien o'connor o'neill okafor okonkwo oliveira olsen
ortiz patel perez pérez peters petrov phillips popov reddy reyes richard rivera roberts robinson
rodriguez rodríguez romano rossi roux russo sanchez sánchez santos sato schmidt schneider schulz
scott shah sharma silva singh smirnov smith souza suzuki takahashi tanaka taylor thomas thompson
torres tran turner wagner walker walsh wang watanabe weber williams wilson wright wu xu yamamoto
yang yilmaz yılmaz zhang zhao zhou
""".split())

ORGANISATION_WORDS = frozenset("""
inc incorporated corp corporation co company companies ltd limited llc llp plc gmbh ag sa sas sarl srl
spa bv nv oy ab as kg group holdings holding enterprises industries international global partners
associates services solutions systems technologies technology tech labs laboratories software
consulting bank university college school institute foundation trust agency department ministry
council club team studio studios store shop restaurant hotel hospital clinic pharmacy motors airlines
""".split())
"""Words that make a value an organisation's name (``Acme Corp``, ``Wayne Enterprises``): not
counted as a person's name under an ambiguous header."""

KNOWN = GIVEN_NAMES | SURNAMES | HONORIFICS
"""Every word that counts toward confirming a column of names."""
